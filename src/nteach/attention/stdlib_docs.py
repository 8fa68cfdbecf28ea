"""The docstrings of the standard library's public functions, classes and methods, walked in a fresh
interpreter: ``python -I -S stdlib_docs.py`` prints them as JSON [prompt, docstring] pairs.

Walked inside a working process, the pairs would depend on what it had imported and patched: transformers
adds methods to ``logging.Logger``, Lightning replaces ``warnings.formatwarning``, the nteach command
``warnings.showwarning``, torch ``inspect.getfile``, and a package that once used
``concurrent.futures.ThreadPoolExecutor`` leaves it among the module's attributes. This file imports only
the standard library, so ``-S`` (no site-packages) can run it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import warnings

STDLIB = """abc argparse ast asyncio base64 bdb bisect calendar cmd codecs collections colorsys
    concurrent.futures configparser contextlib copy csv dataclasses datetime decimal difflib dis doctest
    email.message email.utils enum filecmp fileinput fnmatch fractions ftplib functools getopt gettext
    glob graphlib gzip hashlib heapq hmac html html.parser http.client http.cookiejar http.server
    imaplib inspect io ipaddress itertools json locale logging mailbox math mimetypes numbers operator
    optparse os os.path pathlib pdb pickle pkgutil platform pprint queue random re reprlib sched secrets
    selectors shlex shutil smtplib socket socketserver sqlite3 ssl statistics string subprocess
    sysconfig tarfile tempfile textwrap threading time timeit tokenize traceback typing unittest
    urllib.parse urllib.request uuid warnings wave weakref xml.dom.minidom xml.etree.ElementTree zipfile
    zoneinfo""".split()


def own_doc(obj: object) -> str:
    """An object's own docstring (not one inherited from a base class) without a leading `name(...)` line."""
    doc = inspect.cleandoc(obj.__doc__) if isinstance(obj.__doc__, str) else ""
    if doc.startswith(f"{getattr(obj, '__name__', '')}("):
        doc = doc.partition("\n")[2]
    return doc


def defined_in(obj: object, module: object) -> bool:
    """Whether `obj` comes from `module` (or, for a package, from one of its submodules)."""
    home = getattr(obj, "__module__", None) or ""
    return home == module.__name__ or (hasattr(module, "__path__") and home.startswith(module.__name__ + "."))


def documented(module_name: str) -> list[tuple[str, object]]:
    """(prompt, object) for the public functions, classes and methods a stdlib module defines."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    found: list[tuple[str, object]] = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not defined_in(obj, module):
            continue
        if inspect.isroutine(obj):
            found.append((f"What does the Python function `{module_name}.{name}` do?", obj))
        elif inspect.isclass(obj):
            found.append((f"What does the Python class `{module_name}.{name}` do?", obj))
            for method_name, member in sorted(vars(obj).items()):
                method = getattr(member, "__func__", member)
                if not method_name.startswith("_") and inspect.isroutine(method):
                    found.append((f"What does the Python method `{module_name}.{name}.{method_name}` do?",
                                  method))
    return found


def walk() -> list[tuple[str, str]]:
    """(prompt, own docstring) for every module of STDLIB, in order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [(prompt, own_doc(obj)) for module_name in STDLIB for prompt, obj in documented(module_name)]


if __name__ == "__main__":
    json.dump(walk(), sys.stdout)
