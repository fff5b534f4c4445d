"""Name syntax checks with Kubernetes' exact messages, and generated-name suffixes.

Each `is_*` function returns the list of problems (empty = valid), worded as
`k8s.io/apimachinery/pkg/util/validation` words them, so `minik.apis.validation` can put them in
`Invalid value: "<x>": <message>` causes unchanged. `name_problems` picks the rule a kind uses
for `metadata.name` (DNS-1123 subdomain, DNS-1123 label, DNS-1035 label or path segment).
Neighbours: `minik.apis.validation` and `minik.apis.selectors` call these; the API layer calls
`generate_name` for `metadata.generateName`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

# Kubernetes' random-string alphabet (k8s.io/apimachinery/pkg/util/rand): no vowels, so that
# generated names never spell words, and no look-alike characters (0/o, 1/l, 3/e).
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_SUFFIX_LENGTH = 5
# names.SimpleNameGenerator keeps generated names within a DNS label: 63 - 5.
MAX_GENERATED_PREFIX = 58

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = 63

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
C_IDENTIFIER_FMT = "[A-Za-z_][A-Za-z0-9_]*"
PERCENT_FMT = "[0-9]+%"
WILDCARD_DNS1123_SUBDOMAIN_FMT = "\\*\\." + DNS1123_SUBDOMAIN_FMT

_DNS1123_LABEL = re.compile(f"^{DNS1123_LABEL_FMT}$")
_DNS1123_SUBDOMAIN = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")
_DNS1035_LABEL = re.compile(f"^{DNS1035_LABEL_FMT}$")
_QUALIFIED_NAME = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE = re.compile(f"^{LABEL_VALUE_FMT}$")
_CONFIG_KEY = re.compile(f"^{CONFIG_KEY_FMT}$")
_C_IDENTIFIER = re.compile(f"^{C_IDENTIFIER_FMT}$")
_PERCENT = re.compile(f"^{PERCENT_FMT}$")
_WILDCARD_SUBDOMAIN = re.compile(f"^{WILDCARD_DNS1123_SUBDOMAIN_FMT}$")
_PORT_NAME_CHARS = re.compile("^[-a-z0-9]+$")
_PORT_NAME_LETTER = re.compile("[a-z]")

DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                     "and must start and end with an alphanumeric character")
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                         "'-' or '.', and must start and end with an alphanumeric character")
DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                     "alphabetic character, and end with an alphanumeric character")
QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                      "alphanumeric character")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character")
CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
RELAXED_ENV_NAME_MSG = "a valid environment variable name must consist only of printable ASCII characters other than '='"
C_IDENTIFIER_MSG = ("a valid C identifier must start with alphabetic character or '_', followed by a string of "
                    "alphanumeric characters or '_'")
PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
WILDCARD_SUBDOMAIN_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which "
                          "must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric "
                          "character")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """validation.RegexError: the examples are joined by "', or '" with Go's quirky spacing."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, ex in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{ex}', "
    return out + f"regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


EMPTY_ERROR = "must be non-empty"


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            # A valid subdomain that is not a label: the only difference left is dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_error(DNS1035_LABEL_MAX))
    if not _DNS1035_LABEL.match(value):
        errs.append(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _WILDCARD_SUBDOMAIN.match(value):
        errs.append(regex_error(WILDCARD_SUBDOMAIN_MSG, WILDCARD_DNS1123_SUBDOMAIN_FMT, "*.example.com"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: `[prefix/]name` (IsQualifiedName, Kubernetes 1.32 wording)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _QUALIFIED_NAME.match(name):
        errs.append("name part " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _LABEL_VALUE.match(value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_KEY.match(value):
        errs.append(regex_error(CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    errs.extend(_chdir_prefix(value))
    return errs


def is_env_var_name(value: str) -> list[str]:
    """RelaxedEnvironmentVariableValidation is on by default in 1.32: printable ASCII except '='."""
    errs: list[str] = []
    if not value:
        errs.append("environment variable name " + EMPTY_ERROR)
    for ch in value:
        if ord(ch) > 127 or not ch.isprintable() or ch == "=":
            errs.append(RELAXED_ENV_NAME_MSG)
            break
    return errs


def is_c_identifier(value: str) -> list[str]:
    if _C_IDENTIFIER.match(value):
        return []
    return [regex_error(C_IDENTIFIER_MSG, C_IDENTIFIER_FMT, "my_name", "MY_NAME", "MyName")]


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 characters, [-a-z0-9], a letter, no '--', no leading/trailing '-'."""
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARS.match(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> list[str]:
    return [] if _PERCENT.match(value) else [regex_error(PERCENT_MSG, PERCENT_FMT, "1%", "93%")]


def is_path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """path.IsValidPathSegmentName (RBAC objects, events): not '.', '..', no '/' or '%'."""
    errs: list[str] = []
    if not prefix:
        if name == ".":
            errs.append("may not be '.'")
        elif name == "..":
            errs.append("may not be '..'")
    for bad in ("/", "%"):
        if bad in name:
            errs.append(f"may not contain '{bad}'")
    return errs


def mask_trailing_dash(name: str) -> str:
    """generateName prefixes may end in '-'. Kubernetes swaps the last two characters for 'a'
    before checking (an upstream quirk kept so that the same prefixes pass)."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


NameCheck = Callable[[str, bool], list[str]]


def name_is_dns1123_subdomain(name: str, prefix: bool) -> list[str]:
    return is_dns1123_subdomain(mask_trailing_dash(name) if prefix else name)


def name_is_dns1123_label(name: str, prefix: bool) -> list[str]:
    return is_dns1123_label(mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return is_dns1035_label(mask_trailing_dash(name) if prefix else name)


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    return is_path_segment_name(name, prefix)


# metadata.name rules per (group, kind) where they differ from the DNS-1123 subdomain default.
_NAME_RULES: dict[tuple[str, str], NameCheck] = {
    ("", "Namespace"): name_is_dns1123_label,
    ("", "Service"): name_is_dns1035_label,
    ("", "Event"): name_is_path_segment,
    ("rbac.authorization.k8s.io", "Role"): name_is_path_segment,
    ("rbac.authorization.k8s.io", "RoleBinding"): name_is_path_segment,
    ("rbac.authorization.k8s.io", "ClusterRole"): name_is_path_segment,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): name_is_path_segment,
    ("apiregistration.k8s.io", "APIService"): name_is_path_segment,   # `v1.` is the core group's
}


def name_rule(group: str, kind: str) -> NameCheck:
    return _NAME_RULES.get((group, kind), name_is_dns1123_subdomain)


def name_problems(group: str, kind: str, name: str, prefix: bool = False) -> list[str]:
    """Problems with `name` as `metadata.name` (prefix=True: as `metadata.generateName`)."""
    return name_rule(group, kind)(name, prefix)


def generate_name(prefix: str, rng: random.Random | None = None) -> str:
    """`prefix` (cut to 58 characters) plus 5 random characters, like kube's SimpleNameGenerator."""
    r = rng or random.SystemRandom()
    base = prefix[:MAX_GENERATED_PREFIX]
    return base + "".join(r.choice(GENERATE_ALPHABET) for _ in range(GENERATED_SUFFIX_LENGTH))
