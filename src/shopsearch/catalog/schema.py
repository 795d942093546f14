"""The canonical product record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CATEGORY_SEPARATOR = " > "


@dataclass(frozen=True, slots=True)
class Product:
    """One catalog product in canonical form.

    ``category`` is the category path, most general level first, e.g.
    ``("Home & Kitchen", "Kitchen & Dining")``. ``attributes`` holds every other field.

    >>> Product(id="B01", title="Steel water bottle", brand="Acme").category_path
    ''
    """

    id: str
    title: str
    description: str = ""
    bullet_points: str = ""
    brand: str = ""
    color: str = ""
    price: float | None = None
    category: tuple[str, ...] = ()
    rating: float | None = None
    rating_count: int | None = None
    image: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def category_path(self) -> str:
        return CATEGORY_SEPARATOR.join(self.category)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["category"] = list(self.category)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Product:
        """Inverse of :meth:`to_dict` (trusted input, e.g. from the store)."""
        return cls(**{**data, "category": tuple(data.get("category") or ())})
