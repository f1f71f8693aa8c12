"""The course's adjustments to the book's pages, checked in a real browser by tests/test_book.py
(it opens each page in Chromium at 1280x900): no errors in the console, code cells that show
whole lines (static/course_pages.css), a working page-contents drawer (static/course_pages.js),
and no characters that the browser has no font for."""

from pathlib import Path

from myst_nb.ext import execution_tables

STATIC = Path(__file__).with_name("static")
# The status column of the execution table ({nb-exec-table}, book/timings.md) says it in words:
# myst-nb's ✅ and ❌ are emoji, drawn as empty boxes where no emoji font is installed.
STATUS = {True: "ok", False: "failed"}


def setup(app):
    app.connect("config-inited", _default_colour_mode)
    app.connect("config-inited", _static_files)
    app.connect("build-finished", _drop_repeated_inline_scripts)
    app.add_css_file("course_pages.css")
    app.add_js_file("course_pages.js")
    if "succeeded" not in execution_tables._key2transform:
        raise RuntimeError("myst-nb's execution table has no status column to reword: "
                           "update book/_ext/course_pages.py")
    execution_tables._key2transform["succeeded"] = lambda succeeded: STATUS[succeeded is True]
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def _default_colour_mode(app, config):
    # Without a default, the theme logs "Got invalid theme mode" on a reader's first visit.
    config.html_context.setdefault("default_mode", "auto")


def _static_files(app, config):
    config.html_static_path.append(str(STATIC))


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
