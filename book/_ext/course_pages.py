"""Small fixes that let every page of the book load without errors in the browser's console
(tests/test_book.py opens each page in Chromium and checks)."""

from pathlib import Path


def setup(app):
    app.connect("config-inited", _default_colour_mode)
    app.connect("build-finished", _drop_repeated_inline_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def _default_colour_mode(app, config):
    # Without a default, the theme logs "Got invalid theme mode" on a reader's first visit.
    config.html_context.setdefault("default_mode", "auto")


def _drop_repeated_inline_scripts(app, exception):
    # The theme writes the extensions' one-line settings scripts twice; sphinx-thebe's declares
    # constants, and declaring them again is a page error. A repeated identical line does nothing.
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        seen, lines = set(), []
        for line in page.read_text().splitlines(keepends=True):
            script = line.strip()
            if script.startswith("<script>") and script.endswith("</script>"):
                if script in seen:
                    continue
                seen.add(script)
            lines.append(line)
        page.write_text("".join(lines))
