"""One page of a list: which items a request asked for, and how the answer describes the whole list."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    number: int  # from 1
    size: int  # items per page (the API's `limit`)

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def of(self, items: Sequence[T]) -> list[T]:
        """This page of a list computed whole (bounded lists: a day of minutes, one user's markets)."""
        return list(items[self.offset:self.offset + self.size])

    def reaches(self, count: int) -> bool:
        """Whether a list of `count` items has anything on this page (else its query can be skipped)."""
        return count > self.offset

    def describe(self, count: int) -> dict[str, int]:
        """The envelope's `pagination`."""
        return {"count": count, "page": self.number, "limit": self.size, "pages": math.ceil(count / self.size)}
