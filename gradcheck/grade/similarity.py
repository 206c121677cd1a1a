"""How much of a submission's source is the project's ``reference/``: a flag for the
instructor, never a mark.

The source is cut into tokens, with names, numbers and strings each replaced by one
placeholder and comments and layout dropped (so renaming variables or reformatting a
copy changes nothing), and the runs of SHINGLE tokens are compared with the reference's:
the share of the submission's runs that also occur in ``reference/`` (any of its files).
Code written independently shares short runs with the reference (all BPTT looks alike
over a few tokens) but few of this length; a copy shares nearly all.
Read in the grader's process: the submission's file is only tokenized, never run.
"""
import builtins
import functools
import io
import keyword
import os
import tokenize

from .._reference import REFERENCE_DIR

__all__ = ["reference_share", "SHINGLE", "FLAG_SHARE"]

SHINGLE = 12            # tokens per run
FLAG_SHARE = 0.5        # a submission at least this much reference/ is flagged
_FEWEST = 50            # runs a file needs before it is compared (a stub says nothing)
_SKIP = frozenset((tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                   tokenize.DEDENT, tokenize.ENDMARKER, tokenize.ENCODING))


def _tokens(text):
    out = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(text).readline):
            if t.type in _SKIP:
                continue
            if t.type == tokenize.NAME and not keyword.iskeyword(t.string) \
                    and not hasattr(builtins, t.string):
                out.append("N")
            elif t.type == tokenize.NUMBER:
                out.append("0")
            elif t.type == tokenize.STRING:
                out.append("''")
            else:
                out.append(t.string)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass                    # what was read so far still counts
    return out


def _runs(tokens):
    return {tuple(tokens[i:i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1)}


@functools.lru_cache(maxsize=1)
def _reference_runs():
    runs = set()
    for name in sorted(os.listdir(REFERENCE_DIR)):
        if name.endswith(".py"):
            with open(os.path.join(REFERENCE_DIR, name), encoding="utf-8") as f:
                runs |= _runs(_tokens(f.read()))
    return frozenset(runs)


def reference_share(path):
    """The share (0 to 1) of the source at ``path`` that is runs of ``reference/``;
    None when the file cannot be read or is too short to say."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return None
    runs = _runs(_tokens(text))
    if len(runs) < _FEWEST:
        return None
    return len(runs & _reference_runs()) / len(runs)
