"""MkDocs hook: links from a page to a repository file that is not part of the site.

The pages are also read on the repository itself, where ``[battery](../../proofs/x.py)`` opens
the file. On the site such a target does not exist, so a link whose target (resolved from where
the page lives in the repository) is an existing repository file outside the site becomes its
text plus the file's repository path in code. A link whose target exists neither in the site
nor in the repository is left alone, so ``mkdocs build --strict`` still fails on it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Pages generated from files outside docs/ (docs/_build/gen_pages.py): where each lives.
GENERATED_FROM = {
    "theory/proofs.md": "proofs/README.md",
    "notebooks/index.md": "notebooks/README.md",
}
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def _repo_path(src_uri: str) -> str:
    return GENERATED_FROM.get(src_uri, f"docs/{src_uri}")


def on_page_markdown(markdown, page, config, files):  # type: ignore[no-untyped-def]
    src = page.file.src_uri
    page_dir = posixpath.dirname(src)
    repo_dir = posixpath.dirname(_repo_path(src))

    def fix(match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group(0)  # external, anchor or absolute: not ours to change
        path = target.split("#", 1)[0]
        if not path:
            return match.group(0)
        if files.get_file_from_path(posixpath.normpath(posixpath.join(page_dir, path))):
            return match.group(0)  # a page or file of the site: mkdocs checks it
        repo = posixpath.normpath(posixpath.join(repo_dir, path))
        if repo.startswith("..") or not (ROOT / repo).exists():
            return match.group(0)  # broken everywhere: leave it for --strict to report
        name = posixpath.basename(repo.rstrip("/"))
        if f"`{name}`" in text:  # the text names the file: name it by its repository path
            return text.replace(f"`{name}`", f"`{repo}`")
        return f"{text} (`{repo}`)"

    return LINK.sub(fix, markdown)
