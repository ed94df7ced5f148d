"""MkDocs hook: pages missing from ``nav`` in mkdocs.yml are added to their section.

Pages are listed (and ordered) by hand in mkdocs.yml; a page that is not there yet is still
published rather than failing the strict build: ``docs/*.md`` goes at the end of
"Guides", ``docs/howto/*.md`` at the end of "How-to", ``docs/notebooks/*.ipynb`` at the
end of "Notebooks", titled by its first heading. The build log names each page it adds (at
INFO), so it can be given its place in mkdocs.yml. Anything else left out of the nav
still fails the strict build (``validation.omitted_files: warn``).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.smclient_nav")

#: (glob under docs/, section title in mkdocs.yml)
SECTIONS = (("*.md", "Guides"), ("howto/*.md", "How-to"), ("notebooks/*.ipynb", "Notebooks"))
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def listed(nav: Any) -> set[str]:
    """Every page path named anywhere in a MkDocs ``nav`` value."""
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav.split("#", 1)[0])
    elif isinstance(nav, list):
        for item in nav:
            found |= listed(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            found |= listed(value)
    return found


def title(path: Path) -> str:
    """A page's first level-1 heading (its file name when it has none)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    match = _HEADING.search(text)
    return match.group(1).replace("`", "") if match else path.stem.replace("-", " ").capitalize()


def unlisted(docs_dir: Path, nav: Any) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(title, page), ...]}`` of the pages the nav does not name."""
    named = listed(nav)
    missing: dict[str, list[tuple[str, str]]] = {}
    for pattern, section in SECTIONS:
        for path in sorted(docs_dir.glob(pattern)):
            page = path.relative_to(docs_dir).as_posix()
            if page not in named:
                missing.setdefault(section, []).append((title(path), page))
    return missing


def on_config(config: Any) -> Any:
    nav = config["nav"]
    if not nav:
        return config
    for section, pages in unlisted(Path(config["docs_dir"]), nav).items():
        entries = next(
            (item[section] for item in nav if isinstance(item, dict) and section in item), None
        )
        if entries is None:
            entries = []
            nav.append({section: entries})
        for page_title, page in pages:
            log.info("%s is not in the nav of mkdocs.yml: added at the end of %s", page, section)
            entries.append({page_title: page})
    return config
