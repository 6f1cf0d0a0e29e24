"""Sphinx configuration for greenmotor's documentation.

Build the site (warnings are errors) and run every example against a real server::

    python -m sphinx -W --keep-going -b html doc doc/_build/html
    python -m sphinx -W --keep-going -b doctest doc doc/_build/doctest

``tools/build-docs`` does both. The doctest build uses the server named by
``GREENMOTOR_TEST_URI``, or starts a SecantusDB server (``test/support/servers.py``) for the run.

Most of greenmotor's API is generated from PyMongo's classes (see
:mod:`greenmotor.metaprogramming`), so those methods carry PyMongo's docstrings. PyMongo writes
them for its own Sphinx site; :func:`clean_pymongo_docstring` below adapts them to this one
at build time, so greenmotor's code needs no Sphinx-specific knowledge.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys

DOC_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOC_DIR)
sys.path.insert(0, ROOT)  # document the checkout, installed or not
sys.path.insert(0, os.path.join(ROOT, "test"))  # support/servers.py, for the doctest server
sys.path.insert(0, DOC_DIR)  # docserver.py

import greenmotor  # noqa: E402

project = "greenmotor"
author = "greenmotor's authors"
copyright = "greenmotor's authors"
version = release = greenmotor.version

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]
# No intersphinx: the builds run without network access.

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_css_files = ["greenmotor.css"]
html_theme = "furo"
html_title = f"greenmotor {release}"
default_role = "code"  # `name` in PyMongo's docstrings means code, not a cross-reference

# Broken cross-references into greenmotor's own API are errors. References to other projects
# (PyMongo's and the standard library's names in PyMongo's docstrings, annotations) cannot
# resolve without intersphinx and are shown as plain code.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!greenmotor\.).*"),
    (r"py:class", r"greenmotor\..*\._\w+"),  # private helpers named in return annotations
]

autodoc_member_order = "groupwise"
autodoc_default_options = {"members": True, "undoc-members": True}
autodoc_typehints = "signature"
# Off: a generated method shows PyMongo's signature plus callback, which its source (what this
# option reads) does not have.
autodoc_preserve_defaults = False

# -- doctest ---------------------------------------------------------------------------------
# Only explicit ``.. doctest::`` / ``.. testcode::`` blocks run. Plain ``>>>`` blocks are
# illustrations: PyMongo's docstrings show synchronous calls in them, which greenmotor's
# methods (returning Futures) would not reproduce.
doctest_test_doctest_blocks = ""

# Every document's examples run as one group in a fresh namespace that starts with this.
# ``uri`` is the server to use; ``docserver.server_uri()`` starts SecantusDB on first use and
# the same server serves every document of the run (each document uses its own databases).
doctest_global_setup = """
import docserver
uri = docserver.server_uri()
"""
doctest_global_cleanup = """
docserver.document_done(globals())
"""


def _stop_doc_server(app, exception):
    if "docserver" in sys.modules:
        sys.modules["docserver"].stop()


# -- PyMongo docstrings ------------------------------------------------------------------------

# PyMongo's classes and the greenmotor classes that wrap them, so PyMongo's cross-references
# (``:meth:`~pymongo.collection.Collection.find```) link to greenmotor's pages instead.
PYMONGO_TO_GREENMOTOR = {
    "pymongo.mongo_client.MongoClient": "greenmotor.MotorClient",
    "pymongo.synchronous.mongo_client.MongoClient": "greenmotor.MotorClient",
    "pymongo.MongoClient": "greenmotor.MotorClient",
    "pymongo.database.Database": "greenmotor.MotorDatabase",
    "pymongo.synchronous.database.Database": "greenmotor.MotorDatabase",
    "pymongo.collection.Collection": "greenmotor.MotorCollection",
    "pymongo.synchronous.collection.Collection": "greenmotor.MotorCollection",
    "pymongo.cursor.Cursor": "greenmotor.MotorCursor",
    "pymongo.synchronous.cursor.Cursor": "greenmotor.MotorCursor",
    "pymongo.cursor.RawBatchCursor": "greenmotor.MotorRawBatchCursor",
    "pymongo.command_cursor.CommandCursor": "greenmotor.MotorCommandCursor",
    "pymongo.synchronous.command_cursor.CommandCursor": "greenmotor.MotorCommandCursor",
    "pymongo.change_stream.ChangeStream": "greenmotor.MotorChangeStream",
    "pymongo.synchronous.change_stream.ChangeStream": "greenmotor.MotorChangeStream",
    "pymongo.client_session.ClientSession": "greenmotor.MotorClientSession",
    "pymongo.synchronous.client_session.ClientSession": "greenmotor.MotorClientSession",
    "gridfs.GridFSBucket": "greenmotor.MotorGridFSBucket",
    "gridfs.grid_file.GridIn": "greenmotor.MotorGridIn",
    "gridfs.grid_file.GridOut": "greenmotor.MotorGridOut",
    "gridfs.grid_file.GridOutCursor": "greenmotor.MotorGridOutCursor",
}
_PYMONGO_TARGET = re.compile(
    r"(?P<tilde>~?)(?P<cls>"
    + "|".join(re.escape(k) for k in sorted(PYMONGO_TO_GREENMOTOR, key=len, reverse=True))
    + r")(?P<rest>(\.\w+)?)(?=`|>)"
)
# Roles whose targets live on PyMongo's or MongoDB's own sites; without intersphinx they
# cannot resolve here, so they become plain text (``:ref:`label``` or ``:doc:`text <page>```).
_SITE_ROLE = re.compile(
    r":(?:ref|doc|manual|mongodoc):`(?:(?P<text>[^`<]+?)\s*<[^`>]*>|(?P<bare>[^`]+))`"
)
# Directives of PyMongo's own Sphinx set-up (``.. mongodoc:: find`` links to MongoDB's manual).
_PYMONGO_DIRECTIVE = re.compile(r"^(\s*)\.\. (mongodoc|mongodoc_link)::\s*(.*)$")
# PyMongo's own version history (``.. versionchanged:: 4.1``), which would read as greenmotor's.
_VERSION_NOTE = re.compile(r"^(\s*)\.\. (versionadded|versionchanged)::")


def _to_greenmotor_target(match: re.Match) -> str:
    """A PyMongo target, renamed to greenmotor's if greenmotor has that class and member."""
    ours = PYMONGO_TO_GREENMOTOR[match.group("cls")]
    member = match.group("rest")[1:]
    owner = getattr(greenmotor, ours.split(".", 1)[1], None)
    if owner is None or (member and (member.startswith("_") or not hasattr(owner, member))):
        return match.group(0)
    return match.group("tilde") + ours + match.group("rest")


def clean_pymongo_docstring(lines: list[str]) -> list[str]:
    """Adapt lines of a PyMongo docstring to this site; returns new lines.

    * cross-references to PyMongo classes that greenmotor wraps point to greenmotor's;
    * references into PyMongo's or MongoDB's sites become plain text;
    * ``versionadded``/``versionchanged`` notes go: they give PyMongo's version history,
      which would read as greenmotor's here.

    >>> clean_pymongo_docstring([":meth:`~pymongo.collection.Collection.find` and :ref:`x <y>`"])
    [':meth:`~greenmotor.MotorCollection.find` and x']
    """
    cleaned: list[str] = []
    skip_indent = None  # inside a dropped directive: its indentation
    for line in lines:
        if skip_indent is not None:
            if not line.strip() or len(line) - len(line.lstrip()) > skip_indent:
                continue
            skip_indent = None
        version_note = _VERSION_NOTE.match(line)
        if version_note:
            skip_indent = len(version_note.group(1))
            continue
        directive = _PYMONGO_DIRECTIVE.match(line)
        if directive:
            indent, _, topic = directive.groups()
            cleaned.append(f"{indent}*MongoDB manual:* {topic.strip()}")
            continue
        line = _SITE_ROLE.sub(lambda m: (m.group("text") or m.group("bare")).strip(), line)
        line = _PYMONGO_TARGET.sub(_to_greenmotor_target, line)
        cleaned.append(line)
    while cleaned and not cleaned[-1].strip():
        cleaned.pop()
    return cleaned


def _resolve(dotted: str):
    """The object a dotted name names: longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _generated_method(obj):
    """(attr_name, is_async) if obj was built by greenmotor.metaprogramming, else None.

    A generated method wraps PyMongo's (``__wrapped__``) and carries its signature, plus a
    keyword-only ``callback`` when it answers with a Future.
    """
    if isinstance(obj, property):  # a ReadOnly declaration: PyMongo's attribute, read through
        if getattr(obj.fget, "__module__", None) != "greenmotor.metaprogramming":
            return None
        attr_name = inspect.getclosurevars(obj.fget).nonlocals.get("attr_name")
        return None if attr_name is None else (attr_name, False)
    func = obj
    wrapped = getattr(func, "__wrapped__", None)
    if not inspect.isfunction(func) or wrapped is None:
        return None
    if not getattr(wrapped, "__module__", "").startswith(("pymongo.", "gridfs.")):
        return None
    is_async = "callback" in inspect.signature(func).parameters
    return wrapped.__name__, is_async


def _delegate_target(name: str, attr_name: str):
    """The PyMongo attribute that the generated attribute ``name`` stands for."""
    owner = _resolve(name.rsplit(".", 1)[0])
    delegate_class = getattr(owner, "__delegate_class__", None)
    if delegate_class is None:
        return None
    return getattr(delegate_class, attr_name, None)


def process_docstring(app, what, name, obj, options, lines):
    """Lay out a generated attribute's docstring: PyMongo's summary, greenmotor's note, the rest."""
    generated = _generated_method(obj)
    if generated is None:
        return
    attr_name, _ = generated
    full = obj.__doc__ or ""
    target = _delegate_target(name, attr_name)
    pymongo_doc = (getattr(target, "__doc__", None) or "") if target is not None else ""
    if not (pymongo_doc and full.startswith(pymongo_doc)):
        lines[:] = clean_pymongo_docstring(lines)  # greenmotor's own text, or no PyMongo text
        return
    # PyMongo's text is indented like source code and greenmotor's note after it is not:
    # dedent each part on its own, or the note would push PyMongo's into a block quote.
    head = clean_pymongo_docstring(inspect.cleandoc(pymongo_doc).splitlines())
    note = inspect.cleandoc(full[len(pymongo_doc) :]).splitlines()
    if not note:
        lines[:] = head + [""]
        return
    if note[0].startswith("greenmotor:"):
        note[0] = note[0][len("greenmotor:") :].lstrip()
    # The note goes right after the summary: PyMongo's examples below it are synchronous.
    summary_end = head.index("") if "" in head else len(head)
    if head and head[0].lstrip().startswith(".."):
        summary_end = 0  # no summary line: the note goes first
    admonition = [".. admonition:: greenmotor", ""] + ["   " + n if n else "" for n in note]
    lines[:] = head[:summary_end] + [""] + admonition + [""] + head[summary_end:] + [""]


def process_signature(app, what, name, obj, options, signature, return_annotation):
    """Show PyMongo's parameters (and ``callback``), without PyMongo's annotations."""
    if _generated_method(obj) is None or isinstance(obj, property):
        return None
    params = list(inspect.signature(obj).parameters.values())[1:]  # self
    # Annotations name PyMongo's types (ClientSession, not MotorClientSession): leave them out.
    params = [p.replace(annotation=inspect.Parameter.empty) for p in params]
    return str(inspect.Signature(params)), None


# -- the reference is complete --------------------------------------------------------------

# Public classes whose members are described in prose instead of listed one by one.
DESCRIBED_AS_ANOTHER = {"MotorRawBatchCursor", "MotorRawBatchCommandCursor"}


def check_api_coverage(app, env):
    """Warn (an error with -W) about any public greenmotor name missing from the reference.

    Public means: in ``greenmotor.__all__`` or ``greenmotor.web.__all__``, and for classes
    every attribute not starting with ``_``. A new method added to a class shows up in the
    reference by itself (autodoc), so this fires only when a page leaves a name out.
    """
    from sphinx.util import logging

    import greenmotor.web

    documented = {name for name, *_ in env.get_domain("py").get_objects()}
    missing = []
    for module in (greenmotor, greenmotor.web):
        for name in module.__all__:
            full = f"{module.__name__}.{name}"
            if full not in documented:
                missing.append(full)
                continue
            obj = getattr(module, name)
            if not inspect.isclass(obj) or issubclass(obj, BaseException):
                continue
            if name in DESCRIBED_AS_ANOTHER:
                continue
            own = {a for a in dir(obj) if not a.startswith("_")}
            if issubclass(obj, greenmotor.web.GridFSHandler):
                own = {a for a in own if a in vars(obj)}  # not tornado's RequestHandler API
            missing += sorted(f"{full}.{a}" for a in own if f"{full}.{a}" not in documented)
    if missing:
        logging.getLogger(__name__).warning(
            "public names missing from the API reference (doc/api/): %s", ", ".join(missing)
        )


def setup(app):
    app.connect("autodoc-process-docstring", process_docstring)
    app.connect("autodoc-process-signature", process_signature)
    app.connect("env-check-consistency", check_api_coverage)
    app.connect("build-finished", _stop_doc_server)
