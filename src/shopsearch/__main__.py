from shopsearch.cli import main

raise SystemExit(main())
