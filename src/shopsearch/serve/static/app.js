/* shopsearch storefront: plain JavaScript, no build step, nothing fetched from elsewhere.
 *
 * Talks to the shopsearch HTTP API on the same origin:
 *   GET  /healthz     the pipelines a search may name, and the default one
 *   POST /v1/search   query + filters + pipeline + inline session events -> hits, facets
 *   GET  /v1/suggest  autocomplete
 *   POST /v1/events   UBI event records (impression, click, add_to_cart)
 *
 * Product text is only ever written with textContent / attributes (never innerHTML).
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------ constants
  var PLACEHOLDER_KEY = "__SHOPSEARCH" + "_STOREFRONT_KEY__";
  var RESULTS_K = 24;
  var SUGGEST_K = 8;
  var SUGGEST_DELAY_MS = 150;
  var MAX_INLINE_EVENTS = 50;
  var USER_KEY = "shopsearch.user_id";
  var SESSION_KEY = "shopsearch.session_id";
  var PIPELINE_KEY = "shopsearch.pipeline"; // the chosen pipeline (this tab only)
  var FACET_ORDER = ["brand", "color", "category", "price", "rating"];
  var FACET_TITLES = {
    brand: "Brand",
    color: "Colour",
    category: "Category",
    price: "Price",
    rating: "Rating",
  };
  var GROUP_TITLES = {
    retrieval: "Text match",
    product: "Product quality",
    behaviour: "Shoppers' clicks",
    query: "Category fit",
    user: "Your history",
    session: "This session",
    base: "Base",
  };
  var money = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" });
  var count = new Intl.NumberFormat();

  // ------------------------------------------------------------------ state
  var meta = document.querySelector('meta[name="shopsearch-key"]');
  var apiKey = (meta && meta.getAttribute("content")) || window.SHOPSEARCH_KEY || "";
  var state = {
    query: "",
    filters: emptyFilters(),
    priceBand: null, // label of the selected price facet value, e.g. "10-25"
    result: null,
    // actions sent inline with the next search (the session reacts at once); kept until
    // both sent and stored (a failed POST /v1/events keeps them travelling inline)
    pendingEvents: [],
    cart: 0,
    searchSeq: 0,
    pipeline: null, // the pipeline every search names; null: the server's default
    relax: [], // parts of the query analysis the shopper removed (constraint chips)
  };

  var $ = function (id) {
    return document.getElementById(id);
  };
  var input = $("search-input");
  var form = document.querySelector('[data-testid="search-form"]');
  var list = $("suggestions");
  var userInput = $("user-id");
  var resultsEl = $("results");
  var pipelineSelect = $("pipeline-select");

  // ------------------------------------------------------------------ helpers
  function emptyFilters() {
    return {
      brands: [],
      colors: [],
      category: null,
      price_min: null,
      price_max: null,
      rating_min: null,
    };
  }

  /** el("div", {class: "x", dataset: {testid: "y"}}, "text", child) -- text is escaped. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "class") node.className = value;
        else if (name === "text") node.textContent = String(value);
        else if (name === "dataset") {
          Object.keys(value).forEach(function (k) {
            node.dataset[k] = String(value[k]);
          });
        } else if (name.slice(0, 2) === "on" && typeof value === "function") {
          node.addEventListener(name.slice(2), value);
        } else node.setAttribute(name, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function randomId(prefix, length) {
    var alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    var bytes = new Uint8Array(length);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < length; i++) out += alphabet[bytes[i] % alphabet.length];
    return prefix + out;
  }

  function storageGet(storage, key) {
    try {
      return storage.getItem(key);
    } catch (e) {
      return null;
    }
  }

  function storageSet(storage, key, value) {
    try {
      storage.setItem(key, value);
    } catch (e) {
      /* private mode: keep it in memory only */
    }
  }

  function validId(text) {
    return typeof text === "string" && /^[\x21-\x7e]{1,64}$/.test(text);
  }

  function userId() {
    return userInput.value.trim();
  }

  function sessionId() {
    var id = storageGet(window.sessionStorage, SESSION_KEY);
    if (!validId(id)) {
      id = randomId("sess-", 12);
      storageSet(window.sessionStorage, SESSION_KEY, id);
    }
    return id;
  }

  function isoNow() {
    return new Date().toISOString();
  }

  // ------------------------------------------------------------------ API
  function ApiError(message, status, code, retryAfter) {
    this.message = message;
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  function api(method, path, body) {
    var init = {
      method: method,
      headers: {
        Authorization: "Bearer " + apiKey,
        Accept: "application/json",
        // the storefront's key is public: the server limits each shopper beneath it
        "X-Shopper-Id": validId(userId()) ? userId() : sessionId(),
      },
      credentials: "same-origin",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(
      function (response) {
        return response.text().then(function (text) {
          var data = null;
          try {
            data = text ? JSON.parse(text) : null;
          } catch (e) {
            data = null;
          }
          if (response.ok) return data;
          var message =
            (data && typeof data.message === "string" && data.message) ||
            (data && typeof data.detail === "string" && data.detail) ||
            response.status + " " + (response.statusText || "error");
          var retry = response.headers.get("Retry-After");
          throw new ApiError(message, response.status, data && data.code, retry);
        });
      },
      function (err) {
        throw new ApiError("Cannot reach the server: " + (err && err.message), 0, "network", null);
      }
    );
  }

  // ------------------------------------------------------------------ banner and toast
  function showError(err) {
    var text = err && err.message ? err.message : String(err);
    if (err instanceof ApiError) {
      if (err.status === 429) {
        text =
          "Too many requests: " + text + (err.retryAfter ? " (retry in " + err.retryAfter + " s)" : "");
      } else if (err.status) {
        text = text + " (HTTP " + err.status + (err.code ? ", " + err.code : "") + ")";
      }
    }
    $("banner-text").textContent = text;
    $("banner").hidden = false;
    var banner = $("banner");
    banner.dataset.status = err && err.status !== undefined ? String(err.status) : "";
  }

  function hideError() {
    $("banner").hidden = true;
    $("banner-text").textContent = "";
  }

  var toastTimer = null;
  function toast(text) {
    var node = $("toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () {
      node.hidden = true;
    }, 2200);
  }

  // ------------------------------------------------------------------ events (UBI)
  function eventRecord(action, hit, position, queryId) {
    return {
      event_id: randomId("ev-", 20),
      action_name: action,
      query_id: queryId,
      client_id: userId(),
      session_id: sessionId(),
      timestamp: isoNow(),
      event_attributes: {
        object: { object_id: hit.id, object_id_field: "product_id" },
        position: { ordinal: position },
      },
    };
  }

  function sendEvents(records) {
    if (!records.length) return Promise.resolve(null);
    return api("POST", "/v1/events", { records: records }).catch(function (err) {
      showError(err);
      return null;
    });
  }

  function act(action, hit, position, button) {
    var result = state.result;
    if (!result || !result.query_id) {
      showError(new Error("No search to attach this action to."));
      return;
    }
    var record = eventRecord(action, hit, position, result.query_id);
    var pending = {
      event: {
        action_name: action,
        object_id: hit.id,
        timestamp: Date.parse(record.timestamp) / 1000, // epoch seconds, as the API takes them
      },
      sent: false,
      stored: false,
    };
    state.pendingEvents.push(pending);
    if (state.pendingEvents.length > MAX_INLINE_EVENTS) {
      state.pendingEvents = state.pendingEvents.slice(-MAX_INLINE_EVENTS);
    }
    button.classList.add("done");
    button.setAttribute("aria-pressed", "true");
    if (action === "add_to_cart") {
      state.cart += 1;
      $("cart-count").textContent = String(state.cart);
      toast("Added to cart: " + (hit.product && hit.product.title ? hit.product.title : hit.id));
    } else {
      toast("Viewed: " + (hit.product && hit.product.title ? hit.product.title : hit.id));
    }
    return sendEvents([record]).then(function (answer) {
      if (answer) {
        pending.stored = true;
        prunePending();
      }
    });
  }

  function prunePending() {
    state.pendingEvents = state.pendingEvents.filter(function (p) {
      return !(p.sent && p.stored);
    });
  }

  // ------------------------------------------------------------------ search
  function activeFilters() {
    var f = state.filters;
    var out = {};
    var any = false;
    if (f.brands.length) (out.brands = f.brands.slice()), (any = true);
    if (f.colors.length) (out.colors = f.colors.slice()), (any = true);
    if (f.category) (out.category = f.category), (any = true);
    ["price_min", "price_max", "rating_min"].forEach(function (name) {
      if (f[name] !== null) {
        out[name] = f[name];
        any = true;
      }
    });
    return any ? out : null;
  }

  function search(query) {
    if (typeof query === "string") {
      if (query.trim() !== state.query) state.relax = []; // a new query: analyse it all
      state.query = query.trim();
    }
    if (!state.query) {
      input.focus();
      return Promise.resolve(null);
    }
    closeSuggestions();
    var seq = ++state.searchSeq;
    var inline = state.pendingEvents.slice();
    var events = inline.map(function (p) {
      return p.event;
    });
    var body = {
      query: state.query,
      k: RESULTS_K,
      filters: activeFilters(),
      facets: true,
      user_id: userId() || null,
      session_id: sessionId(),
      events: events,
      explain: true,
      pipeline: state.pipeline,
      relax: state.relax.slice(),
    };
    resultsEl.setAttribute("aria-busy", "true");
    document.body.dataset.searching = "true";
    return api("POST", "/v1/search", body)
      .then(function (result) {
        if (seq !== state.searchSeq) return null; // a newer search is on its way
        hideError();
        // the inline actions reached the ranker; later searches read them from the store
        inline.forEach(function (p) {
          p.sent = true;
        });
        prunePending();
        state.result = result;
        render(result);
        var hits = result.hits || [];
        if (result.query_id && hits.length) {
          sendEvents(
            hits.map(function (hit, i) {
              return eventRecord("impression", hit, i + 1, result.query_id);
            })
          );
        }
        return result;
      })
      .catch(function (err) {
        if (seq === state.searchSeq) showError(err);
        return null;
      })
      .then(function (result) {
        if (seq === state.searchSeq) {
          resultsEl.setAttribute("aria-busy", "false");
          document.body.dataset.searching = "false";
          document.body.dataset.searches = String(seq);
        }
        return result;
      });
  }

  // ------------------------------------------------------------------ rendering: results
  function render(result) {
    renderMeta(result);
    renderChips();
    renderFacets(result.facets || {});
    renderHits(result.hits || []);
  }

  function renderMeta(result) {
    var node = $("meta");
    clear(node);
    var n = (result.hits || []).length;
    node.appendChild(
      el("span", { "data-testid": "result-count" }, n + (n === 1 ? " result" : " results"))
    );
    if (typeof result.candidates === "number") {
      node.appendChild(el("span", { class: "sep" }, " · "));
      node.appendChild(el("span", null, count.format(result.candidates) + " candidates"));
    }
    if (typeof result.took_ms === "number") {
      node.appendChild(el("span", { class: "sep" }, " · "));
      node.appendChild(
        el("span", { "data-testid": "took-ms" }, result.took_ms.toFixed(1) + " ms")
      );
    }
    var parsed = result.parsed;
    if (parsed && parsed.text && parsed.text !== parsed.raw.trim().replace(/\s+/g, " ")) {
      var instead = el("button", { type: "button", class: "btn btn-link", "data-testid": "search-instead" }, parsed.raw);
      instead.addEventListener("click", function () {
        state.relax = ["translation", "spelling", "price", "negation", "audience", "operators", "synonyms"];
        search();
      });
      node.appendChild(
        el(
          "div",
          { class: "showing-for", "data-testid": "showing-for" },
          el("span", null, "Showing results for "),
          el("strong", null, parsed.text),
          el("span", { class: "muted" }, " · search instead for "),
          instead
        )
      );
    }
    if (result.pipeline) {
      node.appendChild(el("span", { class: "sep" }, " · "));
      node.appendChild(
        el(
          "span",
          { class: "pill", "data-testid": "pipeline", title: "The pipeline that answered" },
          String(result.pipeline)
        )
      );
    }
  }

  function renderHits(hits) {
    clear(resultsEl);
    var empty = $("empty");
    if (!hits.length) {
      empty.hidden = false;
      empty.textContent = activeFilters()
        ? "No products match these filters. Remove a filter to see more."
        : "No products found for “" + state.query + "”.";
      return;
    }
    empty.hidden = true;
    hits.forEach(function (hit, i) {
      resultsEl.appendChild(card(hit, i + 1));
    });
  }

  function safeImageUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      var url = new URL(value, window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function stars(rating, ratingCount) {
    if (typeof rating !== "number") {
      return el("div", { class: "rating muted", "data-testid": "result-rating" }, "No ratings yet");
    }
    var clamped = Math.max(0, Math.min(5, rating));
    var fill = el("span", { class: "stars-fill", "aria-hidden": "true" }, "★★★★★");
    fill.style.width = (clamped / 5) * 100 + "%";
    var label = rating.toFixed(1) + " out of 5 stars";
    var node = el(
      "div",
      { class: "rating", "data-testid": "result-rating", title: label },
      el(
        "span",
        { class: "stars", role: "img", "aria-label": label },
        el("span", { class: "stars-empty", "aria-hidden": "true" }, "★★★★★"),
        fill
      ),
      el("span", { class: "rating-value" }, rating.toFixed(1))
    );
    if (typeof ratingCount === "number") {
      node.appendChild(el("span", { class: "rating-count muted" }, "(" + count.format(ratingCount) + ")"));
    }
    return node;
  }

  function card(hit, position) {
    var p = hit.product || { id: hit.id, title: hit.id };
    var media = el("div", { class: "media" }, el("div", { class: "placeholder", "aria-hidden": "true" }));
    var src = safeImageUrl(p.image);
    if (src) {
      var img = el("img", {
        alt: "",
        loading: "lazy",
        decoding: "async",
        referrerpolicy: "no-referrer",
        "data-testid": "result-image",
      });
      img.addEventListener("error", function () {
        img.remove();
        media.classList.remove("has-image");
      });
      img.addEventListener("load", function () {
        media.classList.add("has-image");
      });
      img.src = src;
      media.appendChild(img);
    }
    var category = Array.isArray(p.category) ? p.category : [];
    var details = el(
      "div",
      { class: "details" },
      el("p", { class: "result-brand", "data-testid": "result-brand" }, p.brand || "\u00a0"),
      el("h3", { class: "result-title", "data-testid": "result-title", title: p.title || "" }, p.title || hit.id),
      stars(p.rating, p.rating_count),
      el(
        "p",
        { class: "price", "data-testid": "result-price" },
        typeof p.price === "number" ? money.format(p.price) : "Price unavailable"
      ),
      el(
        "p",
        { class: "attrs muted" },
        [p.color, category.slice(-2).join(" › ")].filter(Boolean).join(" · ")
      )
    );

    var why = whyPanel(hit);
    var whyButton = el(
      "button",
      {
        type: "button",
        class: "btn btn-link",
        "data-testid": "why-button",
        "aria-expanded": "false",
      },
      "Why this result?"
    );
    whyButton.addEventListener("click", function () {
      var open = why.hidden;
      why.hidden = !open;
      whyButton.setAttribute("aria-expanded", open ? "true" : "false");
    });
    var view = el("button", { type: "button", class: "btn", "data-testid": "click-button" }, "View");
    view.addEventListener("click", function () {
      act("click", hit, position, view);
    });
    var cart = el(
      "button",
      { type: "button", class: "btn btn-primary", "data-testid": "cart-button" },
      "Add to cart"
    );
    cart.addEventListener("click", function () {
      act("add_to_cart", hit, position, cart);
    });

    return el(
      "li",
      {
        class: "card",
        "data-testid": "result-card",
        dataset: {
          productId: hit.id,
          brand: p.brand || "",
          color: p.color || "",
          price: typeof p.price === "number" ? p.price : "",
          rating: typeof p.rating === "number" ? p.rating : "",
          category: category.join(" > "),
          position: position,
        },
      },
      el("span", { class: "position muted", "aria-hidden": "true" }, "#" + position),
      media,
      details,
      el("div", { class: "actions" }, view, cart, whyButton),
      why
    );
  }

  function whyPanel(hit) {
    var panel = el("div", { class: "why", "data-testid": "why-panel", hidden: true });
    var explanation = hit.explanation;
    var rows = [];
    var title;
    if (explanation && typeof explanation === "object" && Object.keys(explanation).length) {
      title = "Contribution of each signal to the score";
      Object.keys(explanation).forEach(function (group) {
        var value = Number(explanation[group]);
        if (isFinite(value)) rows.push([GROUP_TITLES[group] || group, value, group]);
      });
    } else {
      title = "Component scores";
      var scores = hit.scores || {};
      Object.keys(scores).forEach(function (name) {
        if (name.indexOf(".") !== -1) return; // per-field detail: bm25.title, ltr.user ...
        var value = Number(scores[name]);
        if (isFinite(value)) rows.push([name, value, name]);
      });
    }
    panel.appendChild(el("p", { class: "why-title" }, title));
    var max = rows.reduce(function (m, r) {
      return Math.max(m, Math.abs(r[1]));
    }, 0);
    var table = el("div", { class: "bars" });
    rows.forEach(function (r) {
      var bar = el("span", { class: "bar " + (r[1] < 0 ? "neg" : "pos") });
      bar.style.width = (max > 0 ? (Math.abs(r[1]) / max) * 100 : 0) + "%";
      table.appendChild(
        el(
          "div",
          { class: "bar-row", "data-testid": "why-row", dataset: { name: r[2] } },
          el("span", { class: "bar-label" }, r[0]),
          el("span", { class: "bar-track" + (r[1] < 0 ? " negative" : "") }, bar),
          el("span", { class: "bar-value" }, formatScore(r[1]))
        )
      );
    });
    if (!rows.length) table.appendChild(el("p", { class: "muted" }, "No score details."));
    panel.appendChild(table);
    if (typeof hit.score === "number") {
      panel.appendChild(el("p", { class: "why-total muted" }, "score " + formatScore(hit.score)));
    }
    return panel;
  }

  function formatScore(value) {
    var abs = Math.abs(value);
    var digits = abs >= 100 ? 1 : abs >= 1 ? 3 : 4;
    return (value > 0 ? "+" : "") + value.toFixed(digits);
  }

  // ------------------------------------------------------------------ facets and chips
  function facetEntries(values) {
    if (!Array.isArray(values)) return [];
    return values
      .map(function (v) {
        if (Array.isArray(v)) return { value: String(v[0]), count: Number(v[1]) };
        if (v && typeof v === "object") return { value: String(v.value), count: Number(v.count) };
        return null;
      })
      .filter(Boolean);
  }

  function parseBand(label) {
    // "10-25" -> [10, 25], "200+" -> [200, null]; bands are [low, high) in the index
    var plus = /^(\d+(?:\.\d+)?)\+$/.exec(label);
    if (plus) return [Number(plus[1]), null];
    var range = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(label);
    if (range) return [Number(range[1]), Number(range[2])];
    return null;
  }

  function bandLabel(label) {
    var band = parseBand(label);
    if (!band) return label;
    return band[1] === null
      ? money.format(band[0]) + " and up"
      : money.format(band[0]) + " – " + money.format(band[1]);
  }

  function isActive(name, value) {
    var f = state.filters;
    if (name === "brand") return f.brands.indexOf(value) !== -1;
    if (name === "color") return f.colors.indexOf(value) !== -1;
    if (name === "price") return state.priceBand === value;
    if (name === "rating") return f.rating_min !== null && f.rating_min === parseFloat(value);
    return false;
  }

  function toggleFacet(name, value) {
    var f = state.filters;
    var toggle = function (arr) {
      var i = arr.indexOf(value);
      if (i === -1) arr.push(value);
      else arr.splice(i, 1);
    };
    if (name === "brand") toggle(f.brands);
    else if (name === "color") toggle(f.colors);
    else if (name === "category") f.category = f.category ? f.category + " > " + value : value;
    else if (name === "price") {
      if (state.priceBand === value) clearPrice();
      else {
        var band = parseBand(value);
        if (!band) return;
        state.priceBand = value;
        f.price_min = band[0];
        // the band excludes its upper bound; the filter includes it
        f.price_max = band[1] === null ? null : Math.round((band[1] - 0.01) * 100) / 100;
      }
    } else if (name === "rating") {
      var min = parseFloat(value);
      f.rating_min = f.rating_min === min ? null : min;
    } else return;
    search();
  }

  function clearPrice() {
    state.priceBand = null;
    state.filters.price_min = null;
    state.filters.price_max = null;
  }

  function renderFacets(facets) {
    var root = $("facets");
    clear(root);
    var names = FACET_ORDER.filter(function (n) {
      return n in facets;
    }).concat(
      Object.keys(facets).filter(function (n) {
        return FACET_ORDER.indexOf(n) === -1;
      })
    );
    var shown = 0;
    names.forEach(function (name) {
      var entries = facetEntries(facets[name]);
      var f = state.filters;
      // keep selected values visible (a brand filter narrows the brand counts to itself)
      if (name === "brand" || name === "color") {
        (name === "brand" ? f.brands : f.colors).forEach(function (v) {
          if (!entries.some(function (e) { return e.value === v; })) entries.push({ value: v, count: 0 });
        });
      }
      var header = el("h2", { class: "facet-title" }, FACET_TITLES[name] || name);
      var section = el("section", { class: "facet", "data-testid": "facet-group-" + name }, header);
      if (name === "category" && f.category) {
        var up = el(
          "button",
          { type: "button", class: "btn btn-link facet-up", "data-testid": "facet-category-up" },
          "‹ " + f.category.split(" > ").slice(-1)[0]
        );
        up.addEventListener("click", function () {
          var levels = f.category.split(" > ");
          levels.pop();
          f.category = levels.length ? levels.join(" > ") : null;
          search();
        });
        section.appendChild(up);
      }
      if (!entries.length) return;
      var ul = el("ul", { class: "facet-values" });
      entries.forEach(function (entry) {
        var active = isActive(name, entry.value);
        var label =
          name === "price"
            ? bandLabel(entry.value)
            : name === "rating"
            ? "★ " + entry.value.replace("+", "") + " & up"
            : entry.value;
        var button = el(
          "button",
          {
            type: "button",
            class: "facet-value" + (active ? " active" : ""),
            "aria-pressed": active ? "true" : "false",
            "data-testid": "facet-" + name + "-" + entry.value,
            title: label,
            dataset: { facet: name, value: entry.value },
          },
          el("span", { class: "facet-check", "aria-hidden": "true" }, active ? "✓" : ""),
          el("span", { class: "facet-label" }, label),
          el("span", { class: "facet-count muted" }, count.format(entry.count))
        );
        button.addEventListener("click", function () {
          toggleFacet(name, entry.value);
        });
        ul.appendChild(el("li", null, button));
      });
      section.appendChild(ul);
      root.appendChild(section);
      shown += 1;
    });
    if (!shown) root.appendChild(el("p", { class: "muted" }, "No filters for these results."));
  }

  function chip(label, value, remove) {
    var button = el(
      "button",
      { type: "button", class: "chip-remove", "data-testid": "chip-remove", "aria-label": "Remove filter " + label + ": " + value },
      "×"
    );
    button.addEventListener("click", function () {
      remove();
      search();
    });
    return el(
      "span",
      { class: "chip", "data-testid": "filter-chip" },
      el("span", { class: "chip-label" }, label + ": "),
      el("span", { class: "chip-value" }, value),
      button
    );
  }

  function queryChip(constraint) {
    var button = el(
      "button",
      { type: "button", class: "chip-remove", "data-testid": "query-chip-remove", "aria-label": "Remove " + constraint.label },
      "×"
    );
    button.addEventListener("click", function () {
      if (state.relax.indexOf(constraint.kind) < 0) state.relax.push(constraint.kind);
      search();
    });
    return el(
      "span",
      { class: "chip chip-query", "data-testid": "query-chip", "data-kind": constraint.kind, title: "Understood from your query" },
      el("span", { class: "chip-value" }, constraint.label),
      button
    );
  }

  function renderChips() {
    var root = $("chips");
    clear(root);
    var parsed = state.result && state.result.parsed;
    ((parsed && parsed.constraints) || []).forEach(function (c) {
      root.appendChild(queryChip(c));
    });
    var f = state.filters;
    f.brands.forEach(function (b) {
      root.appendChild(chip("Brand", b, function () { f.brands.splice(f.brands.indexOf(b), 1); }));
    });
    f.colors.forEach(function (c) {
      root.appendChild(chip("Colour", c, function () { f.colors.splice(f.colors.indexOf(c), 1); }));
    });
    if (f.category) {
      root.appendChild(chip("Category", f.category, function () { f.category = null; }));
    }
    if (f.price_min !== null || f.price_max !== null) {
      var text = state.priceBand
        ? bandLabel(state.priceBand)
        : (f.price_min !== null ? money.format(f.price_min) : "") + " – " +
          (f.price_max !== null ? money.format(f.price_max) : "");
      root.appendChild(chip("Price", text, clearPrice));
    }
    if (f.rating_min !== null) {
      root.appendChild(chip("Rating", "★ " + f.rating_min + " & up", function () { f.rating_min = null; }));
    }
    if (root.querySelectorAll('[data-testid="filter-chip"]').length > 1) {
      var all = el("button", { type: "button", class: "btn btn-link", "data-testid": "clear-filters" }, "Clear all");
      all.addEventListener("click", function () {
        state.filters = emptyFilters();
        state.priceBand = null;
        search();
      });
      root.appendChild(all);
    }
  }

  // ------------------------------------------------------------------ autocomplete
  var suggestTimer = null;
  var suggestSeq = 0;
  var activeIndex = -1;
  var suggestAvailable = true;

  function suggestionItems() {
    return Array.prototype.slice.call(list.querySelectorAll('[role="option"]'));
  }

  function closeSuggestions() {
    clearTimeout(suggestTimer);
    suggestSeq += 1; // drop answers still on their way
    list.hidden = true;
    clear(list);
    activeIndex = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function setActive(index) {
    var items = suggestionItems();
    if (!items.length) return;
    activeIndex = (index + items.length) % items.length;
    items.forEach(function (item, i) {
      item.setAttribute("aria-selected", i === activeIndex ? "true" : "false");
      item.classList.toggle("active", i === activeIndex);
    });
    input.setAttribute("aria-activedescendant", items[activeIndex].id);
    items[activeIndex].scrollIntoView({ block: "nearest" });
  }

  function pick(text) {
    input.value = text;
    closeSuggestions();
    search(text);
  }

  function renderSuggestions(suggestions, prefix) {
    clear(list);
    activeIndex = -1;
    if (!suggestions.length) {
      closeSuggestions();
      return;
    }
    suggestions.forEach(function (s, i) {
      var text = String(s.text);
      var item = el("li", {
        id: "suggestion-" + i,
        role: "option",
        class: "suggestion",
        "aria-selected": "false",
        "data-testid": "suggestion",
        dataset: { source: s.source || "", text: text },
      });
      // the typed prefix in normal weight, the completion in bold
      var lower = text.toLowerCase();
      var p = prefix.toLowerCase();
      var label = el("span", { class: "suggestion-text" });
      if (p && lower.indexOf(p) === 0) {
        label.appendChild(document.createTextNode(text.slice(0, prefix.length)));
        label.appendChild(el("strong", null, text.slice(prefix.length)));
      } else {
        label.appendChild(document.createTextNode(text));
      }
      item.appendChild(label);
      if (s.source) item.appendChild(el("span", { class: "suggestion-source muted" }, String(s.source)));
      item.addEventListener("mousedown", function (event) {
        event.preventDefault(); // keep focus in the input
        pick(text);
      });
      item.addEventListener("mousemove", function () {
        if (activeIndex !== i) setActive(i);
      });
      list.appendChild(item);
    });
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function requestSuggestions() {
    var prefix = input.value;
    if (!suggestAvailable || !prefix.trim()) {
      closeSuggestions();
      return;
    }
    var seq = ++suggestSeq;
    api("GET", "/v1/suggest?q=" + encodeURIComponent(prefix) + "&k=" + SUGGEST_K)
      .then(function (data) {
        if (seq !== suggestSeq || input.value !== prefix || document.activeElement !== input) return;
        renderSuggestions((data && data.suggestions) || [], prefix);
      })
      .catch(function (err) {
        if (err.status === 404) suggestAvailable = false; // a server without autocomplete
        else if (seq === suggestSeq) showError(err);
      });
  }

  input.addEventListener("input", function () {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(requestSuggestions, SUGGEST_DELAY_MS);
  });

  input.addEventListener("keydown", function (event) {
    var open = !list.hidden && suggestionItems().length > 0;
    if (event.key === "ArrowDown") {
      if (open) {
        event.preventDefault();
        setActive(activeIndex + 1);
      } else if (input.value.trim()) {
        requestSuggestions();
      }
    } else if (event.key === "ArrowUp" && open) {
      event.preventDefault();
      setActive(activeIndex <= 0 ? suggestionItems().length - 1 : activeIndex - 1);
    } else if (event.key === "Enter" && open && activeIndex >= 0) {
      event.preventDefault();
      pick(suggestionItems()[activeIndex].dataset.text);
    } else if (event.key === "Escape" && open) {
      event.preventDefault();
      closeSuggestions();
    }
  });

  input.addEventListener("blur", function () {
    setTimeout(closeSuggestions, 100);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var query = input.value.trim();
    if (query !== state.query) {
      // a new query starts from no filters (facet values belong to the previous one)
      state.filters = emptyFilters();
      state.priceBand = null;
    }
    search(query);
  });

  // ------------------------------------------------------------------ pipelines
  /** Fill the pipeline selector from /healthz: the server's default selected, unless this
   *  tab chose another that the server still has. Resolves once filled (or failed). */
  function loadPipelines() {
    return fetch("/healthz", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .catch(function () {
        return null;
      })
      .then(function (health) {
        var names = health && Array.isArray(health.pipelines) ? health.pipelines.map(String) : [];
        if (!names.length) return; // searches keep naming no pipeline: the server's default
        var fallback = names.indexOf(health.default_pipeline) !== -1 ? health.default_pipeline : names[0];
        var chosen = storageGet(window.sessionStorage, PIPELINE_KEY);
        if (names.indexOf(chosen) === -1) chosen = fallback;
        clear(pipelineSelect);
        names.forEach(function (name) {
          var label = name === health.default_pipeline ? name + " (default)" : name;
          pipelineSelect.appendChild(el("option", { value: name, dataset: { pipeline: name } }, label));
        });
        pipelineSelect.value = chosen;
        pipelineSelect.disabled = false;
        state.pipeline = chosen;
      });
  }

  pipelineSelect.addEventListener("change", function () {
    state.pipeline = pipelineSelect.value || null;
    storageSet(window.sessionStorage, PIPELINE_KEY, pipelineSelect.value);
    if (state.query) search(); // the same query and filters, ranked by the chosen pipeline
  });

  // ------------------------------------------------------------------ shopper ids
  function initShopper() {
    var stored = storageGet(window.localStorage, USER_KEY);
    if (!validId(stored)) {
      stored = randomId("shopper-", 4);
      storageSet(window.localStorage, USER_KEY, stored);
    }
    userInput.value = stored;
    userInput.addEventListener("change", function () {
      var value = userId();
      if (!validId(value)) {
        showError(new Error("A shopper id is 1-64 visible ASCII characters without spaces."));
        userInput.value = storageGet(window.localStorage, USER_KEY) || "";
        return;
      }
      storageSet(window.localStorage, USER_KEY, value);
      state.pendingEvents = []; // the unsent actions belonged to the previous shopper
      if (state.query) search();
    });
    $("session-id").textContent = sessionId();
  }

  $("banner-close").addEventListener("click", hideError);

  initShopper();
  if (!apiKey || apiKey === PLACEHOLDER_KEY) {
    showError(new Error("This page has no API key: open it through `shopsearch serve`."));
  }
  var initial = new URLSearchParams(window.location.search).get("q");
  loadPipelines().then(function () {
    if (initial) {
      input.value = initial;
      search(initial);
    }
    document.body.dataset.ready = "true";
  });
})();
