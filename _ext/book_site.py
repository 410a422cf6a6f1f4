"""Small Sphinx fixes for the book's website (enabled in _config.yml's sphinx.local_extensions).

- sphinx-thebe 0.3.1 registers its inline configuration script twice under
  Sphinx 7.4 (once through the registry, once directly on the builder), and the
  second `const THEBE_JS_URL` throws "Identifier has already been declared" on
  every page. Drop repeated identical scripts from each page.
"""

from __future__ import annotations


def _script_key(asset) -> tuple:
    attributes = getattr(asset, "attributes", {}) or {}
    return (getattr(asset, "filename", asset) or "", tuple(sorted(attributes.items())))


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for asset in scripts:
        key = _script_key(asset)
        if key not in seen:
            seen.add(key)
            unique.append(asset)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
