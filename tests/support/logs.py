"""The service's log output as the tests read it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class LogCapture:
    """The service's real log output, as a log shipper reading stdout would see it."""

    stream: io.StringIO

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line parsed as one JSON object (a line that is not JSON fails the test)."""
        # Split on LF only, as line-oriented shippers do; a raw CR or LF inside a value
        # would show up here as a line that does not parse.
        return [json.loads(line) for line in self.text.split("\n") if line]

    def of_request(self, request_id: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("request_id") == request_id]

    def messages(self) -> list[str]:
        return [line["message"] for line in self.lines()]
