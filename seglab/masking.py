"""What counts as a secret on seglab's command line, and how it is kept out of names and logs.

Run directory names, sweep names, what wandb records and seglab's printed lines are all built
from the command-line overrides. There an override is masked when its key looks like a
credential (`+wandb.api_token=...`, `+db.passwd=...`, `+s3.credentials=...`, `+auth_header=...`),
when its value reads an environment variable (`${oc.env:VAR}`), or when it interpolates such a
value (`+db.dsn=postgres://u:${db.password}@h/db`): the key stays, the value becomes
`masked-<16 hex digits>`. A URL's user and password (`https://user:token@host/...`) and its
token-like query parameters (`?token=...`, `&sig=...`) are masked wherever they appear; a
database URL's user is a role name and is kept (`postgresql://seglab:masked-...@host/db`).

The 16 hex digits are an HMAC-SHA256 of the value as written, keyed with 32 random bytes that
seglab creates once per machine and user in `$SEGLAB_CACHE/masking-key` (else
`~/.cache/seglab/masking-key`, readable by the user alone). Why a key and not a hash: any
unkeyed hash, however slow, lets whoever reads a run directory's name try candidate passwords
offline (a short one falls in minutes), while the same value must still give the same name
(a relaunched sweep finds its jobs) and two secrets two names. Without the key a name says
nothing about the value; with 64 bits two secrets practically never share a name. Machines that
share a home (a cluster) share the key; a machine with another key names the same command's
directories anew.

Masking must see the overrides as written: Hydra keeps them as strings in its config, and
reading them (`${hydra:overrides.task}`, `${hydra:job.override_dirname}`) resolves an
`${oc.env:VAR}` in them. `${hydra_masked:...}` (conf/config.yaml) reads them unresolved, then
masks. The same key rule keeps such entries out of the config wandb receives.

Hydra writes its record of a job (`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`) and a
sweeper its sweep's (`multirun.yaml`) from the overrides as written: RunDirCallback rewrites
them with `mask_hydra_files` before the job starts; an `${oc.env:VAR}` stays as written (the
variable's name is no secret).

Error lines are built from resolved values (`dataset.data_root='/the/secret/path': no such
folder`), so every line seglab prints or keeps about a failure goes through `mask_text`: each
value it knows to be a secret (the command's secret-key values, the environment variables its
overrides read, URL credentials) is replaced by its mask; mmengine's log lines too
(seglab/run/console.py).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from seglab.overrides import override_key
from seglab.tree import leaves

SECRET_KEY = re.compile(
    r"key|token|secret|passw|passphrase|pwd|credential|auth|private|cookie", re.IGNORECASE
)
# a sweep's jobs get their values escaped (`$\{oc.env\:VAR\}`)
READS_ENV = re.compile(r"\boc\.env\s*\\?:")
MASKED = re.compile(r"masked-[0-9a-f]{16}")
KEY_FILE = "masking-key"


def looks_secret(key: str) -> bool:
    """Whether a config key (or an override's dotted key) names a credential."""
    return bool(SECRET_KEY.search(key))


def reads_env(value: Any) -> bool:
    """Whether a value as written takes an environment variable's content."""
    return isinstance(value, str) and bool(READS_ENV.search(value))


# the characters Hydra escapes in the overrides it writes for a sweep's jobs
_ESCAPED = re.compile(r"\\([\\()\[\]{}:=, \t])")
_TO_ESCAPE = re.compile(r"([\\()\[\]{}:=, \t])")


def _unescaped(value: str) -> str:
    return _ESCAPED.sub(r"\1", value)


# --- the key --------------------------------------------------------------------------------


def _key_path() -> Path:
    root = os.environ.get("SEGLAB_CACHE") or os.path.join(Path.home(), ".cache", "seglab")
    return Path(root) / KEY_FILE


@functools.lru_cache(maxsize=8)
def _key(path: str) -> bytes:
    """The masking key kept in `path`, created there (mode 0600) by the first process that
    needs it; two processes creating it at once agree on one (the file appears whole, by a
    hard link, or not at all). Where it cannot be kept, a key of this process only."""
    file = Path(path)
    try:
        with contextlib.suppress(FileNotFoundError):
            key = file.read_bytes()
            if len(key) >= 16:
                return key
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{KEY_FILE}-")  # mode 0600
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
            os.close(fd)
            try:
                os.link(tmp, file)
            except FileExistsError:
                if len(file.read_bytes()) < 16:  # a damaged key: replaced
                    os.replace(tmp, file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return file.read_bytes()
    except OSError as err:
        warnings.warn(
            f"seglab cannot keep its masking key in {file} ({err}); secrets are masked with a "
            "key of this process, so their run directories get other names next time "
            "(set SEGLAB_CACHE to a folder you can write)",
            stacklevel=2,
        )
        return secrets.token_bytes(32)


@functools.lru_cache(maxsize=1024)
def _digest(key: bytes, plain: str) -> str:
    return hmac.new(key, plain.encode(), hashlib.sha256).hexdigest()[:16]


def mask_value(value: str) -> str:
    """`masked-` and 16 hex digits of a keyed hash (HMAC-SHA256, the machine's masking key) of
    `value` unescaped, so a sweep job's override and its config value are masked alike."""
    return f"masked-{_digest(_key(str(_key_path())), _unescaped(value))}"


# --- overrides ------------------------------------------------------------------------------

# a URL's user information (`scheme://user:password@`) and its secret-looking query parameters;
# a sweep job's overrides escape `:` and `=` with a backslash
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*\\?:(?://|\\/\\/))(?P<info>[^/\s@'\"]+)@"
)
# a query value ends where running text goes on: at `)`, whitespace or a quote (`(see
# x?sig=SECRET)`), so the same secret always gets the same mask; a character a sweep job's
# override escapes (`\)`, `\ `) is part of the value
_URL_PARAM = re.compile(
    r"(?P<sep>[?&;])(?P<name>[A-Za-z0-9_.-]+)(?P<eq>\\?=)"
    r"(?P<value>(?:\\.|[^&;#\s'\")\\])+)"
)
_DATABASE_SCHEME = re.compile(r"(?:postgres|postgresql|mysql|mariadb|oracle|mssql)[+:]", re.I)
_SECRET_PARAM = re.compile(r"^(sig|signature|code|sas|x-amz-security-token)$", re.IGNORECASE)


def mask_urls(text: str) -> str:
    """`text` with the credentials of every URL in it masked."""

    def userinfo(m: re.Match) -> str:
        info = m["info"]
        if MASKED.fullmatch(info):
            return m[0]
        user, colon, password = info.partition(":")
        if _DATABASE_SCHEME.match(m["scheme"]):
            # a database's user is a role name, not a credential (a token-as-user is a web
            # URL's habit): kept, so that a printed command still names it
            if not colon or MASKED.fullmatch(password):
                return m[0]
            return f"{m['scheme']}{user}:{mask_value(password)}@"
        return f"{m['scheme']}{mask_value(info)}@"

    def param(m: re.Match) -> str:
        name, value = m["name"], m["value"]
        if MASKED.fullmatch(value) or not (looks_secret(name) or _SECRET_PARAM.match(name)):
            return m[0]
        return f"{m['sep']}{name}{m['eq']}{mask_value(value)}"

    return _URL_PARAM.sub(param, _URL_USERINFO.sub(userinfo, text))


def mask_override(override: str) -> str:
    """`key=value` with the value masked where the key or the value says it is a secret (a
    URL's credentials alone where the value holds a URL)."""
    key, sep, value = override.partition("=")
    if not sep or MASKED.fullmatch(value):
        return override
    if looks_secret(override_key(key)) or reads_env(value):
        return f"{key}={mask_value(value)}"
    return f"{key}={mask_urls(value)}"


def mask_overrides(overrides: Iterable[str]) -> list[str]:
    """Every override of a command line (or sys.argv) with its secret values masked."""
    return [mask_override(str(o)) for o in overrides]


@contextlib.contextmanager
def masked_argv() -> Iterator[None]:
    """sys.argv with its secret values masked, while a library that records it reads it."""
    argv = sys.argv
    sys.argv = [*argv[:1], *mask_overrides(argv[1:])]
    try:
        yield
    finally:
        sys.argv = argv


# --- the secrets a process knows, and text ---------------------------------------------------

# `${oc.env:VAR}` or `${oc.env:VAR,default}`, escaped or not
_ENV = re.compile(r"\$\\?\{\s*oc\.env\s*\\?:\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\\?,([^}]*))?\\?\}")
# a plain node interpolation: `${db.password}`, `${.password}`
_NODE_REF = re.compile(r"\$\{\s*(\.*[A-Za-z_][\w.\-\[\]]*)\s*\}")
_SWEEP_FUNCTION = re.compile(r"^(?:choice|shuffle|sort)\((.*)\)$", re.DOTALL)
_NOT_SECRET = {"true", "false", "null", "none", "~", ""}
_remembered: dict[str, str] = {}  # secret text -> its mask


def _alternatives(value: str) -> list[str]:
    """The values of an override as written: one, or a sweep's (`a,b`, `choice(a,b)`), each
    unquoted; a comma inside brackets, quotes or escaped does not separate two."""
    match = _SWEEP_FUNCTION.match(value.strip())
    text = match[1] if match else value
    parts, current, depth, quote, escaped = [], "", 0, "", False
    for ch in text:
        if escaped:
            current, escaped = current + "\\" + ch, False
            continue
        if ch == "\\":
            escaped = True
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current + ("\\" if escaped else ""))
    unquoted = []
    for part in (p.strip() for p in parts):
        if len(part) >= 2 and part[0] == part[-1] and part[0] in "'\"":
            part = part[1:-1]
        unquoted.append(_unescaped(part))
    return unquoted


def _env_value(m: re.Match) -> str:
    default = m[2].strip().strip("'\"") if m[2] is not None else ""
    return os.environ.get(m[1], default)


def override_secrets(override: str) -> dict[str, str]:
    """secret text -> its mask, for one override: the value of a secret-looking key (each of a
    sweep's), the environment variables its value reads, the value they resolve into."""
    key, sep, value = str(override).partition("=")
    if not sep or MASKED.fullmatch(value):
        return {}
    secret_key = looks_secret(override_key(key))
    found: dict[str, str] = {}
    for written in _alternatives(value):
        for m in _ENV.finditer(written):
            env = _env_value(m)
            if env.strip():
                found[env] = mask_value(m[0])
        if secret_key or reads_env(written):
            resolved = _ENV.sub(_env_value, written)
            if resolved.strip().lower() not in _NOT_SECRET and (
                reads_env(written) or len(resolved) >= 4
            ):
                found.setdefault(resolved, mask_value(written))
    return found


def forget_secrets() -> None:
    """Forget what `remember_secrets` kept (a process that runs several commands, e.g. tests,
    one after another: a value secret to one is not to the next)."""
    _remembered.clear()


def remember_secrets(overrides: Iterable[str]) -> None:
    """Keep the secrets of `overrides` for every later `mask_text` of this process."""
    for override in overrides:
        _remembered.update(override_secrets(override))


def known_secrets(overrides: Iterable[str] = ()) -> dict[str, str]:
    """secret text -> its mask: those of `overrides`, of the command line (sys.argv), of the
    current Hydra job's overrides and those remembered."""
    found = dict(_remembered)
    sources = [*overrides, *sys.argv[1:]]
    with contextlib.suppress(Exception):  # no Hydra job, or not one of seglab's
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        if HydraConfig.initialized():
            task = HydraConfig.get().overrides.task
            sources += OmegaConf.to_container(task, resolve=False)
    for override in sources:
        found.update(override_secrets(str(override)))
    return found


@functools.lru_cache(maxsize=1024)
def _secret_pattern(secret: str) -> re.Pattern:
    """Where `secret` occurs in a text, as itself, Hydra-escaped or as Python's repr writes it;
    a short one only as a whole word (`abc` in `/data/abc/x`, not in `abcde`)."""
    forms = {secret, _TO_ESCAPE.sub(r"\\\1", secret), repr(secret)[1:-1]}
    alternation = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    if len(secret) >= 8:
        return re.compile(alternation)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])")


def holds_secret(text: str, secrets_: Iterable[str]) -> bool:
    return any(_secret_pattern(s).search(text) for s in secrets_ if s)


def mask_text(text: Any, overrides: Iterable[str] = ()) -> str:
    """`text` (an error message, a traceback, a log line) with every secret seglab knows of
    (`known_secrets(overrides)`) and every URL credential masked."""
    return mask_found(str(text), known_secrets(overrides))


def mask_found(text: str, found: dict[str, str]) -> str:
    """`text` with URL credentials and the secrets of `found` (`known_secrets`) masked."""
    text = mask_urls(text)
    for secret in sorted(found, key=len, reverse=True):
        if secret:
            text = _secret_pattern(secret).sub(found[secret], text)
    return text


# a `key=` that starts an override in a line of text
_OVERRIDE_START = re.compile(r"^[+~]{0,2}[A-Za-z_][\w.@/-]*=")


def mask_line(line: str) -> str:
    """A line listing overrides (`#0 : a=1 +db.password=two\\ words b=2`) with their secret
    values masked, a value with spaces as a whole (to the next override), then `mask_text`."""
    words = re.split(r"(\s+)", line)
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        masked = mask_override(word) if _OVERRIDE_START.match(word) else word
        if masked != word and MASKED.fullmatch(masked.partition("=")[2]):
            key, _, value = word.partition("=")
            j = i + 1  # the words up to the next override belong to this value
            while j + 1 < len(words) and not _OVERRIDE_START.match(words[j + 1]):
                value += words[j] + words[j + 1]
                j += 2
            out.append(f"{key}={mask_value(value.rstrip())}")
            i = j
            continue
        out.append(masked)
        i += 1
    return mask_text("".join(out))


class MaskingFilter(logging.Filter):
    """Masks the secret values of a log line (Hydra's launchers log each job's overrides)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = "\n".join(mask_line(line) for line in message.split("\n"))
        if masked != message:
            record.msg, record.args = masked, None
        return True


class MaskingStream:
    """A text stream that writes to `stream` with the secrets seglab knows of masked: around
    the training command's stderr, where Hydra prints the traceback of an error it did not
    expect, whose message may hold a resolved secret (a value mmseg read as a file name)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        found = known_secrets()
        self.stream.write(mask_found(text, found) if found else text)
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self.stream, name)


@contextlib.contextmanager
def masked_stderr() -> Iterator[None]:
    """sys.stderr masks secrets inside the block (MaskingStream)."""
    stream = sys.stderr
    sys.stderr = MaskingStream(stream)
    try:
        yield
    finally:
        sys.stderr = stream


# the loggers of the Hydra launchers seglab offers, which log every job's overrides
LAUNCHER_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
)


def mask_launcher_logs() -> None:
    """Have the launchers' loggers mask secrets (once per process)."""
    for name in LAUNCHER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskingFilter) for f in logger.filters):
            logger.addFilter(MaskingFilter())


# --- the current Hydra job ------------------------------------------------------------------


def _refs(value: str) -> list[str]:
    """The config keys a value interpolates (`${db.password}` -> `db.password`)."""
    return [r.lstrip(".") for r in _NODE_REF.findall(_unescaped(value))]


def _job_overrides() -> list[tuple[str, str, str]]:
    """(key, as written, as shown) for each task override of the current Hydra job: shown is
    masked where it is a secret or interpolates one (`+db.dsn=...${db.password}...`), else as
    Hydra gives it (interpolations resolved), URL credentials masked."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    task = HydraConfig.get().overrides.task
    written = OmegaConf.to_container(task, resolve=False)
    parsed = OverridesParser.create().parse_overrides(written)
    keys = [o.key_or_group for o in parsed]
    shown: list[str | None] = []  # masked as a whole
    for line in written:
        masked = mask_override(line)
        shown.append(masked if MASKED.fullmatch(masked.partition("=")[2]) else None)
    secret_keys = {k for k, s in zip(keys, shown, strict=True) if s is not None}
    found = known_secrets(written)
    resolved: dict[int, str] = {}
    for i, line in enumerate(written):
        if shown[i] is None and "${" in _unescaped(line):
            resolved[i] = task[i]  # may read other overrides' values
    changed = True
    while changed:  # an override interpolating a masked one is masked, and so on
        changed = False
        for i, line in resolved.items():
            key, _, value = line.partition("=")
            if shown[i] is None and (
                any(looks_secret(r) or r in secret_keys for r in _refs(value))
                or holds_secret(resolved[i].partition("=")[2], found)
            ):
                shown[i] = f"{key}={mask_value(value)}"
                secret_keys.add(keys[i])
                changed = True
    return [  # the others with their URL credentials masked
        (keys[i], line, shown[i] or mask_override(resolved.get(i, task[i])))
        for i, line in enumerate(written)
    ]


def task_overrides() -> list[str]:
    """The current Hydra job's task overrides, secret values masked."""
    return [shown for _, _, shown in _job_overrides()]


def override_dirname() -> str:
    """Hydra's `job.override_dirname` (same keys, order and separators), secrets masked."""
    from hydra.core.hydra_config import HydraConfig

    options = HydraConfig.get().job.config.override_dirname
    kept = sorted(
        (line, shown) for key, line, shown in _job_overrides() if key not in options.exclude_keys
    )
    # as Hydra builds it: sorted as written, then every `=` becomes kv_sep
    return options.item_sep.join(shown for _, shown in kept).replace("=", options.kv_sep)


def hydra_masked(path: str) -> Any:
    """`${hydra_masked:job.override_dirname}` and `${hydra_masked:overrides.task}`."""
    readers = {"job.override_dirname": override_dirname, "overrides.task": task_overrides}
    if path not in readers:
        raise ValueError(f"hydra_masked:{path}: expected one of {', '.join(readers)}")
    return readers[path]()


# --- a whole config ---------------------------------------------------------------------------


def mask_env_values(resolved: Any, raw: Any) -> Any:
    """`resolved` (a config as a container) with every value written as `${oc.env:...}`, every
    value that interpolates a secret (a secret-looking key, an environment variable) and every
    URL credential masked.

    `raw` is the same config unresolved; a key whose name looks secret is dropped elsewhere
    (wandb_logging.without_secrets), but its value is a secret to look for in the others.
    """
    found = known_secrets()
    secret_paths: set[str] = set()
    _collect(resolved, raw, "", False, found, secret_paths)
    return _masked(resolved, raw, found, secret_paths)


def _collect(
    resolved: Any, raw: Any, path: str, secret: bool, found: dict, paths: set[str]
) -> None:
    """The secret values of a config: under secret-looking keys, or read from the environment."""
    if isinstance(resolved, dict):
        for k, v in resolved.items():
            sub = f"{path}.{k}" if path else str(k)
            r = raw.get(k) if isinstance(raw, dict) else None
            _collect(v, r, sub, secret or looks_secret(str(k)), found, paths)
    elif isinstance(resolved, list):
        for i, v in enumerate(resolved):
            r = raw[i] if isinstance(raw, list) and i < len(raw) else None
            _collect(v, r, f"{path}[{i}]", secret, found, paths)
    elif secret or reads_env(raw):
        paths.add(path)
        text = str(resolved) if isinstance(resolved, str) or reads_env(raw) else ""
        if text.strip().lower() not in _NOT_SECRET and (reads_env(raw) or len(text) >= 4):
            found.setdefault(text, mask_value(raw if isinstance(raw, str) else text))


def _masked(resolved: Any, raw: Any, found: dict, paths: set[str]) -> Any:
    if reads_env(raw):
        return mask_value(raw)
    if isinstance(resolved, dict):
        return {
            k: _masked(v, raw.get(k) if isinstance(raw, dict) else None, found, paths)
            for k, v in resolved.items()
        }
    if isinstance(resolved, list):
        same = isinstance(raw, list) and len(raw) == len(resolved)
        return [_masked(v, raw[i] if same else None, found, paths) for i, v in enumerate(resolved)]
    if isinstance(resolved, str):
        written = raw if isinstance(raw, str) else resolved
        refs = _refs(written) if isinstance(raw, str) else []
        if any(looks_secret(r) or r in paths for r in refs) or holds_secret(resolved, found):
            return mask_value(written)
        return mask_urls(resolved)
    return resolved


# --- Hydra's record: a job's `.hydra/`, a sweep's multirun.yaml -------------------------------

# an interpolation with nothing nested in it: `${oc.env:VAR}`, `${db.password}`
_INTERPOLATION = re.compile(r"\$\{[^${}]*\}")


def _names_only(value: Any) -> bool:
    """Whether a value as written holds no secret of its own: nothing but interpolations
    (`${oc.env:VAR}`, `${db.password}`: where a secret comes from, not what it is; a default
    written in it is a value), or null, a boolean, nothing."""
    text = _unescaped(str(value)).strip().strip("'\"")
    if any(m[2] is not None and m[2].strip().strip("'\"") for m in _ENV.finditer(text)):
        return False
    previous = None
    while previous != text:
        previous, text = text, _INTERPOLATION.sub("", text)
    return text.strip().lower() in _NOT_SECRET


def mask_record_override(override: str) -> str:
    """An override as Hydra's record keeps it: the value of a secret-looking key masked (as
    `mask_override` masks it) unless it only names where the secret comes from
    (`+db.password=${oc.env:VAR}` keeps the variable's name), URL credentials masked."""
    key, sep, value = str(override).partition("=")
    if not sep or MASKED.fullmatch(value):
        return override
    if looks_secret(override_key(key)) and not _names_only(value):
        return f"{key}={mask_value(value)}"
    return f"{key}={mask_urls(value)}"


def _secret_paths(overrides: Iterable[str]) -> dict[str, str]:
    """config path -> mask, for each override that sets a secret-looking key to a value of
    its own (`+x.passwd=hunter2` -> `x.passwd`)."""
    paths = {}
    for override in overrides:
        key, sep, value = str(override).partition("=")
        path = override_key(key).split("@", 1)[0]
        if sep and looks_secret(path) and not _names_only(value) and not MASKED.fullmatch(value):
            paths[path] = mask_value(value)
    return paths


def _record_override_dirname(hydra: dict, task: list[str], found: dict[str, str]) -> str | None:
    """`hydra.job.override_dirname` as Hydra builds it (its overrides sorted as written, less
    the excluded keys, `=` as kv_sep), each override masked; None where the record's own is
    not that (then it is masked as text)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        options = hydra["job"]["config"]["override_dirname"]
        written = hydra["job"]["override_dirname"]
        parsed = OverridesParser.create().parse_overrides(task)
    except Exception:  # noqa: BLE001  (not a record Hydra wrote: masked as text)
        return None
    lines = sorted(o.input_line for o in parsed if o.key_or_group not in options["exclude_keys"])
    kv_sep, item_sep = options["kv_sep"], options["item_sep"]
    if re.sub("=", kv_sep, item_sep.join(lines)) != written:
        return None
    masked = [mask_found(mask_record_override(line), found) for line in lines]
    return re.sub("=", kv_sep, item_sep.join(masked))


def mask_record(data: Any, overrides: Iterable[str] = ()) -> Any:
    """One of Hydra's record files as a container, unresolved (a job's `.hydra/config.yaml`,
    `hydra.yaml` or `overrides.yaml`, a sweep's `multirun.yaml`), with every secret masked:
    the overrides (`overrides.yaml`, `hydra.overrides.task`, `hydra.job.override_dirname`) by
    `mask_record_override`, the config value each secret-looking override sets, and in every
    string the secrets seglab knows of (`known_secrets`: of `overrides`, of the record's own
    task overrides, of the command) and URL credentials. An `${oc.env:VAR}` stays as written:
    the variable's name."""
    task = [str(o) for o in overrides]
    hydra = data.get("hydra") if isinstance(data, dict) else None
    recorded = (hydra.get("overrides") or {}).get("task") if isinstance(hydra, dict) else None
    if isinstance(recorded, list):
        task += [str(o) for o in recorded]
    if isinstance(data, list):  # overrides.yaml
        task += [str(o) for o in data]
    found = known_secrets(task)
    paths = _secret_paths(task)
    override_lists = {"", "hydra.overrides.task"}

    def masked_leaves(node: Any, mask: str | None) -> Any:
        if isinstance(node, dict):
            return {k: masked_leaves(v, None) for k, v in node.items()}
        if isinstance(node, list):
            return [masked_leaves(v, None) for v in node]
        if node is None or isinstance(node, bool) or _names_only(node):
            return node
        return mask or found.get(str(node)) or mask_value(str(node))

    def walk(node: Any, path: str) -> Any:
        if path in paths:
            return masked_leaves(node, paths[path])
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            if path in override_lists:
                return [
                    mask_found(mask_record_override(v), found) if isinstance(v, str) else v
                    for v in node
                ]
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return mask_found(node, found) if isinstance(node, str) else node

    masked = walk(data, "")
    if isinstance(hydra, dict) and isinstance(hydra.get("job"), dict):
        dirname = _record_override_dirname(hydra, [str(o) for o in recorded or []], found)
        if dirname is not None:
            masked["hydra"]["job"]["override_dirname"] = dirname
    return masked


def mask_hydra_files(paths: Iterable[str | os.PathLike], overrides: Iterable[str] = ()) -> None:
    """Rewrite Hydra's record files (`mask_record`) that exist among `paths`, where they hold a
    secret; written whole or not at all (a sweep's jobs may mask its multirun.yaml at once)."""
    from omegaconf import OmegaConf

    overrides = list(overrides)
    for path in map(Path, paths):
        if not path.is_file():
            continue
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        masked = mask_record(data, overrides)
        if masked == data:
            continue
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(OmegaConf.to_yaml(OmegaConf.create(masked)))
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


# --- environment variables a command reads ------------------------------------------------------


def unset_variables(
    overrides: Iterable[str], config: Any = None, provided: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """(key, variable) for each `${oc.env:VAR}` without a default, in an override or in a
    config value (a container, unresolved), whose variable is not set (in this process, nor
    among `provided`): OmegaConf would stop the run with its traceback where the value is
    first read."""
    missing: dict[tuple[str, str], None] = {}
    given = {*os.environ, *provided}

    def look(key: str, value: Any) -> None:
        if isinstance(value, str):
            for m in _ENV.finditer(_unescaped(value)):
                if m[2] is None and m[1] not in given:
                    missing[(key, m[1])] = None

    for override in overrides:
        key, sep, value = str(override).partition("=")
        if sep:
            look(key, value)

    for path, node in leaves(config):
        if not {p for p, _ in missing} & {path, f"+{path}", f"++{path}"}:
            look(path, node)
    return list(missing)


CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_control_characters(text: str) -> str:
    """`text` with every control character but newline and tab written as a Python escape."""
    return CONTROL_CHARACTERS.sub(lambda match: ascii(match.group())[1:-1], text)
