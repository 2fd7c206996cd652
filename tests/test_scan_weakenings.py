"""Security weakenings, read from real git changes in temporary repositories: Django views, DRF
viewsets and settings, requests/httpx redirect handling, in the shapes those projects use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from changes import change

import jackline.config
from jackline.models import Finding
from jackline.scans import READ_LIMIT, Change, run_scans, weakenings

VIEWS = """\
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, render
from django.views.generic import DetailView, UpdateView

from .models import Invoice


@login_required
def invoice_list(request):
    invoices = Invoice.objects.filter(owner=request.user)
    return render(request, "invoices/list.html", {"invoices": invoices})


@login_required
@permission_required("billing.change_invoice", raise_exception=True)
def invoice_void(request, pk):
    invoice = get_object_or_404(Invoice, pk=pk)
    if invoice.owner != request.user and not request.user.is_staff:
        raise PermissionDenied
    invoice.void()
    return render(request, "invoices/void.html", {"invoice": invoice})


def invoice_pdf(request, pk):
    if not request.user.is_authenticated:
        return HttpResponseForbidden()
    invoice = get_object_or_404(Invoice, pk=pk)
    return invoice.as_pdf()


class InvoiceDetail(LoginRequiredMixin, DetailView):
    model = Invoice


class InvoiceEdit(PermissionRequiredMixin, UpdateView):
    model = Invoice
    permission_required = "billing.change_invoice"
"""

VIEWSETS = """\
from rest_framework import permissions, viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from .models import Project
from .serializers import ProjectSerializer


class IsProjectMember(permissions.BasePermission):
    def has_object_permission(self, request, view, obj):
        return obj.members.filter(pk=request.user.pk).exists()


class ProjectViewSet(viewsets.ModelViewSet):
    queryset = Project.objects.all()
    serializer_class = ProjectSerializer
    permission_classes = [permissions.IsAuthenticated, IsProjectMember]


@api_view(["GET"])
@permission_classes([permissions.IsAdminUser])
def stats(request):
    return Response({"projects": Project.objects.count()})
"""

SETTINGS = """\
import os

SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["shop.example.com"]

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
"""

SESSIONS = '''\
class SessionRedirectMixin:
    def should_strip_auth(self, old_url, new_url):
        """Decide whether Authorization header should be removed when redirecting"""
        old_parsed = urlparse(old_url)
        new_parsed = urlparse(new_url)
        return old_parsed.hostname != new_parsed.hostname

    def rebuild_auth(self, prepared_request, response):
        headers = prepared_request.headers
        url = prepared_request.url

        if "Authorization" in headers and self.should_strip_auth(
            response.request.url, url
        ):
            # If we get redirected to a new host, we should strip out any
            # authentication headers.
            del headers["Authorization"]

        new_auth = get_netrc_auth(url) if self.trust_env else None
        if new_auth is not None:
            prepared_request.prepare_auth(new_auth)
'''

CLIENT = """\
import subprocess

import requests
import yaml


def load_config(path):
    with open(path) as f:
        return yaml.safe_load(f)


def fetch(url, token):
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def archive(name):
    subprocess.run(["tar", "czf", f"{name}.tgz", name], check=True)


def count_orders(cursor, customer_id):
    cursor.execute("SELECT count(*) FROM orders WHERE customer_id = %s", [customer_id])
    return cursor.fetchone()[0]
"""


def scan(tmp_path: Path, path: str, before: str, after: str) -> list[Finding]:
    return weakenings.scan(
        change(tmp_path, {path: before}, {path: after}), jackline.config.parse({})
    )


def found(findings: list[Finding]) -> list[tuple[str, str, int | None]]:
    return [(f.rule, f.level, f.line) for f in findings]


# --- block: authentication and authorization guards removed -------------------------------------


def test_removed_login_required_blocks_at_the_old_decorator_line(tmp_path: Path) -> None:
    after = VIEWS.replace("@login_required\ndef invoice_list", "def invoice_list")
    (f,) = scan(tmp_path, "billing/views.py", VIEWS, after)
    assert (f.rule, f.level, f.file, f.line) == (
        "security.auth-removed",
        "block",
        "billing/views.py",
        11,
    )
    assert f.message == "removed `@login_required` from `invoice_list`"
    assert "owner" in f.why


def test_removed_permission_required_and_ownership_check_block(tmp_path: Path) -> None:
    after = VIEWS.replace(
        '@permission_required("billing.change_invoice", raise_exception=True)\n', ""
    ).replace(
        "    if invoice.owner != request.user and not request.user.is_staff:\n"
        "        raise PermissionDenied\n",
        "",
    )
    findings = scan(tmp_path, "billing/views.py", VIEWS, after)
    assert found(findings) == [
        ("security.auth-removed", "block", 18),
        ("security.auth-removed", "block", 21),
    ]
    assert "permission_required" in findings[0].message
    assert findings[1].quote == "if invoice.owner != request.user and not request.user.is_staff:"


def test_removed_is_authenticated_check_and_mixins_block(tmp_path: Path) -> None:
    after = (
        VIEWS.replace(
            "    if not request.user.is_authenticated:\n        return HttpResponseForbidden()\n",
            "",
        )
        .replace("InvoiceDetail(LoginRequiredMixin, DetailView)", "InvoiceDetail(DetailView)")
        .replace("InvoiceEdit(PermissionRequiredMixin, UpdateView)", "InvoiceEdit(UpdateView)")
    )
    findings = scan(tmp_path, "billing/views.py", VIEWS, after)
    assert found(findings) == [
        ("security.auth-removed", "block", 28),
        ("security.auth-removed", "block", 34),
        ("security.auth-removed", "block", 38),
    ]


def test_guards_moved_or_rewritten_are_not_reported(tmp_path: Path) -> None:
    """Decorators reordered, a mixin swapped for method_decorator, a check rewritten or moved
    into a helper the change adds, a new view beside them: the guards all stand."""
    after = (
        VIEWS.replace(
            '@login_required\n@permission_required("billing.change_invoice", raise_exception=True)',
            '@permission_required("billing.change_invoice", raise_exception=True)\n@login_required',
        )
        .replace(
            "class InvoiceDetail(LoginRequiredMixin, DetailView):",
            '@method_decorator(login_required, name="dispatch")\nclass InvoiceDetail(DetailView):',
        )
        .replace("if not request.user.is_authenticated:", "if request.user.is_anonymous:")
        .replace(
            "    if invoice.owner != request.user and not request.user.is_staff:\n"
            "        raise PermissionDenied\n",
            "    _check_owner(request, invoice)\n",
        )
    )
    after += (
        "\n\ndef _check_owner(request, invoice):\n"
        "    if invoice.owner != request.user and not request.user.is_staff:\n"
        "        raise PermissionDenied\n"
        "\n\n@login_required\ndef invoice_csv(request):\n    return export(request.user)\n"
    )
    assert scan(tmp_path, "billing/views.py", VIEWS, after) == []


def test_deleted_view_is_not_a_removed_guard(tmp_path: Path) -> None:
    start = VIEWS.index("@login_required\ndef invoice_list")
    end = VIEWS.index("@login_required\n@permission_required")
    assert scan(tmp_path, "billing/views.py", VIEWS, VIEWS[:start] + VIEWS[end:]) == []


def test_permission_classes_opened_or_narrowed_block(tmp_path: Path) -> None:
    opened = VIEWSETS.replace(
        "[permissions.IsAuthenticated, IsProjectMember]", "[permissions.AllowAny]"
    )
    (f,) = scan(tmp_path, "projects/api.py", VIEWSETS, opened)
    assert (f.rule, f.level, f.line) == ("security.permission-opened", "block", 17)
    assert "AllowAny" in f.message


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("[permissions.IsAuthenticated, IsProjectMember]", "[permissions.IsAuthenticated]",
         "no longer includes IsProjectMember"),
        ("[permissions.IsAuthenticated, IsProjectMember]", "[]", "emptied"),
        ("@permission_classes([permissions.IsAdminUser])\n", "", "removed"),
        ("[permissions.IsAuthenticated, IsProjectMember]",
         "[permissions.IsAuthenticatedOrReadOnly, IsProjectMember]", "IsAuthenticatedOrReadOnly"),
    ],
)  # fmt: skip
def test_permission_classes_weakened_each_way(
    tmp_path: Path, old: str, new: str, says: str
) -> None:
    (f,) = scan(tmp_path, "projects/api.py", VIEWSETS, VIEWSETS.replace(old, new))
    assert (f.rule, f.level) == ("security.permission-opened", "block")
    assert says in f.message


def test_has_object_permission_made_to_return_true_blocks(tmp_path: Path) -> None:
    after = VIEWSETS.replace(
        "return obj.members.filter(pk=request.user.pk).exists()", "return True"
    )
    (f,) = scan(tmp_path, "projects/api.py", VIEWSETS, after)
    assert (f.rule, f.level, f.line) == ("security.auth-removed", "block", 11)
    assert "always returns True" in f.message


def test_stronger_permission_classes_and_new_viewset_are_not_reported(tmp_path: Path) -> None:
    after = VIEWSETS.replace(
        "[permissions.IsAuthenticated, IsProjectMember]",
        "[permissions.IsAuthenticated, IsProjectMember, permissions.DjangoModelPermissions]",
    ) + (
        "\n\nclass TagViewSet(viewsets.ReadOnlyModelViewSet):\n"
        "    permission_classes = (permissions.IsAuthenticated,)\n"
    )
    assert scan(tmp_path, "projects/api.py", VIEWSETS, after) == []


def test_default_permission_classes_opened_in_settings_blocks(tmp_path: Path) -> None:
    after = SETTINGS.replace(
        '"rest_framework.permissions.IsAuthenticated"', '"rest_framework.permissions.AllowAny"'
    )
    (f,) = scan(tmp_path, "shop/settings.py", SETTINGS, after)
    assert (f.rule, f.level, f.line) == ("security.permission-opened", "block", 8)


# --- warn: weakenings introduced ------------------------------------------------------------------


def test_debug_allowed_hosts_and_csrf_exempt_warn(tmp_path: Path) -> None:
    after = SETTINGS.replace(
        'DEBUG = os.environ.get("DJANGO_DEBUG") == "1"', "DEBUG = True"
    ).replace('["shop.example.com"]', '["*"]')
    findings = scan(tmp_path, "shop/settings.py", SETTINGS, after)
    assert found(findings) == [
        ("security.debug", "warn", 4),
        ("security.allowed-hosts", "warn", 5),
    ]
    views = VIEWS.replace(
        "def invoice_pdf(request, pk):", "@csrf_exempt\ndef invoice_pdf(request, pk):"
    )
    (f,) = scan(tmp_path / "2", "billing/views.py", VIEWS, views)
    assert (f.rule, f.level, f.line) == ("security.csrf-exempt", "warn", 27)


def test_client_weakenings_warn_at_their_lines(tmp_path: Path) -> None:
    after = (
        CLIENT.replace("yaml.safe_load(f)", "yaml.load(f)")
        .replace("timeout=10)", "timeout=10, verify=False)")
        .replace(
            'subprocess.run(["tar", "czf", f"{name}.tgz", name], check=True)',
            'subprocess.run(f"tar czf {name}.tgz {name}", shell=True, check=True)',
        )
        .replace(
            'cursor.execute("SELECT count(*) FROM orders WHERE customer_id = %s", [customer_id])',
            'cursor.execute(f"SELECT count(*) FROM orders WHERE customer_id = {customer_id}")',
        )
    )
    findings = scan(tmp_path, "shop/client.py", CLIENT, after)
    assert found(findings) == [
        ("security.yaml-load", "warn", 9),
        ("security.tls-verify", "warn", 13),
        ("security.shell", "warn", 17),
        ("security.sql-format", "warn", 21),
    ]


def test_benign_client_edits_are_not_reported(tmp_path: Path) -> None:
    """A literal shell command, a parameterised query, safe YAML, a moved function, a timeout
    raised: nothing weaker."""
    after = CLIENT.replace("timeout=10", "timeout=30").replace(
        'subprocess.run(["tar", "czf", f"{name}.tgz", name], check=True)',
        'subprocess.run("tar --version", shell=True, check=True)\n'
        '    subprocess.run(["tar", "czf", f"{name}.tgz", name], check=True)',
    )
    head, _, rest = after.partition("\n\ndef fetch")
    after = (
        head
        + "\n\ndef fetch"
        + rest
        + "\n\ndef load_all(paths):\n"
        + ("    return [yaml.load(open(p), Loader=yaml.SafeLoader) for p in paths]\n")
    )
    assert scan(tmp_path, "shop/client.py", CLIENT, after) == []


def test_existing_weakening_moved_is_not_new(tmp_path: Path) -> None:
    before = CLIENT.replace("timeout=10)", "timeout=10, verify=False)")
    fetch = (
        "def fetch(url, token):\n    return requests.get(url, "
        'headers={"Authorization": f"Bearer {token}"}, timeout=10, verify=False)\n'
    )
    after = (
        before.replace(fetch, "") + "\n\n" + fetch.replace("    return", "    # moved\n    return")
    )
    assert scan(tmp_path, "shop/client.py", before, after) == []


def test_redirect_that_keeps_authorization_warns(tmp_path: Path) -> None:
    dropped = SESSIONS.replace('            del headers["Authorization"]\n', "            pass\n")
    (f,) = scan(tmp_path, "src/requests/sessions.py", SESSIONS, dropped)
    assert (f.rule, f.level, f.line) == ("security.auth-header-kept", "warn", 17)
    never = SESSIONS.replace(
        "        return old_parsed.hostname != new_parsed.hostname", "        return False"
    )
    (f,) = scan(tmp_path / "2", "src/requests/sessions.py", SESSIONS, never)
    assert (f.rule, f.line) == ("security.auth-header-kept", 6)
    assert "always returns False" in f.message


def test_httpx_redirect_headers_pop_removed_warns(tmp_path: Path) -> None:
    before = (
        "def _redirect_headers(self, request, url, method):\n"
        "    headers = Headers(request.headers)\n"
        "    if not _same_origin(url, request.url):\n"
        "        if not _is_https_redirect(request.url, url):\n"
        '            headers.pop("Authorization", None)\n'
        '        headers["Host"] = url.netloc.decode("ascii")\n'
        "    return headers\n"
    )
    after = before.replace('            headers.pop("Authorization", None)\n', "            pass\n")
    assert found(scan(tmp_path, "httpx/_client.py", before, after)) == [
        ("security.auth-header-kept", "warn", 5)
    ]


def test_bandit_issue_the_change_introduced_names_its_test_id(tmp_path: Path) -> None:
    after = (
        CLIENT
        + "\n\ndef digest(data):\n    import hashlib\n    return hashlib.md5(data).hexdigest()\n"
    )
    (f,) = scan(tmp_path, "shop/client.py", CLIENT, after)
    assert (f.rule, f.level, f.line) == ("security.bandit.B324", "warn", 27)
    assert f.message.startswith("bandit B324 (hashlib,")


def test_bandit_issue_already_there_and_moved_is_not_new(tmp_path: Path) -> None:
    md5 = "\n\ndef digest(data):\n    import hashlib\n    return hashlib.md5(data).hexdigest()\n"
    before = CLIENT + md5
    head, _, rest = CLIENT.partition("\n\ndef fetch")
    after = head + md5 + "\n\ndef fetch" + rest
    assert scan(tmp_path, "shop/client.py", before, after) == []


def test_bandit_issues_in_tests_are_info_and_nosec_does_not_hide_them(tmp_path: Path) -> None:
    test = "def test_digest():\n    assert digest(b'x')\n"
    after = test + "\n\ndef test_md5():\n    import hashlib\n    hashlib.md5(b'x')  # nosec\n"
    (f,) = scan(tmp_path, "tests/test_digest.py", test, after)
    assert (f.rule, f.level) == ("security.bandit.B324", "info")


def test_scan_is_on_in_the_default_config_and_can_be_turned_off(tmp_path: Path) -> None:
    after = VIEWS.replace("@login_required\ndef invoice_list", "def invoice_list")
    ch = change(tmp_path, {"billing/views.py": VIEWS}, {"billing/views.py": after})
    report = run_scans(ch, jackline.config.parse({}))
    assert [f.rule for f in report.blocking] == ["security.auth-removed"]
    assert "weakenings" in report.timings
    off = jackline.config.parse({"scan": {"weakenings": False}})
    assert weakenings.scan(ch, off) == []


# --- hostile workspace ----------------------------------------------------------------------------


def test_symlinked_changed_file_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("import requests\nrequests.get('https://x', verify=False)\n")
    ch = change(tmp_path, {"app/client.py": CLIENT}, {"app/client.py": None})
    os.symlink(outside, ch.root / "app" / "client.py")
    ch = Change.of_workspace(ch.root, ch.base)
    assert weakenings.scan(ch, jackline.config.parse({})) == []


def test_oversized_changed_file_fails_the_scan_which_blocks(tmp_path: Path) -> None:
    big = CLIENT + "# " + "x" * (READ_LIMIT + 10) + "\n"
    ch = change(tmp_path, {"app/client.py": CLIENT}, {"app/client.py": big})
    report = run_scans(ch, jackline.config.parse({}), {"weakenings": weakenings.scan})
    (f,) = report.findings
    assert (f.rule, f.level) == ("scan.error", "block")
    assert "too large" in f.message


def test_bandit_sees_only_a_private_copy_never_the_workspace(tmp_path: Path) -> None:
    """bandit names a module by looking for `__init__.py` beside the path it is given: it is
    given text, which it sees as a copy in a fresh temporary folder, so a hostile package
    layout or file name in the workspace is never looked at."""
    name = "pkg/we ird$(touch pwned)\n.py"
    ch = change(
        tmp_path,
        {"pkg/__init__.py": "", name: CLIENT},
        {name: CLIENT + "import pickle\npickle.loads(b'')\n"},
    )
    findings = weakenings.scan(ch, jackline.config.parse({}))
    assert [f.rule for f in findings] == ["security.bandit.B301"]
    assert findings[0].file == name
    assert not (ch.root / "pwned").exists() and not Path("pwned").exists()
    (hit,) = weakenings.bandit_hits("import pickle\npickle.loads(b'')\n")
    assert (hit.rule, hit.line) == ("bandit.B301", 2)


FLASK_ADMIN = """\
@admin.route("/admin/import", methods=["GET", "POST"])
@admins_only
def import_ctf():
    return render_template("admin/import.html")


@admin.route("/admin/export", methods=["GET", "POST"])
@admins_only
def export_ctf():
    return send_file(export_ctf_util())


class UserPrivate(Resource):
    @authed_only
    @users_namespace.doc(description="Endpoint to get the User object for the current user")
    def get(self):
        return {"success": True, "data": get_current_user().to_dict()}
"""


def test_project_guard_decorators_removed_block(tmp_path: Path) -> None:
    after = FLASK_ADMIN.replace(
        'methods=["GET", "POST"])\n@admins_only\ndef export', 'methods=["GET", "POST"])\ndef export'
    ).replace("    @authed_only\n", "")
    findings = scan(tmp_path, "CTFd/admin/__init__.py", FLASK_ADMIN, after)
    assert found(findings) == [
        ("security.auth-removed", "block", 8),
        ("security.auth-removed", "block", 14),
    ]


def test_route_or_doc_decorator_removed_is_not_a_guard(tmp_path: Path) -> None:
    after = FLASK_ADMIN.replace(
        '    @users_namespace.doc(description="Endpoint to get the User object for the current user")\n',
        "",
    )
    assert scan(tmp_path, "CTFd/admin/__init__.py", FLASK_ADMIN, after) == []


def test_user_scoped_lookup_and_auth_assert_removed_block(tmp_path: Path) -> None:
    before = (
        "def _get_check_for_user(request, code):\n"
        "    assert request.user.is_authenticated\n"
        "    check = get_object_or_404(Check, code=code)\n"
        "    membership = get_object_or_404(Member, project=check.project, user=request.user)\n"
        "    return check, membership.is_rw\n"
    )
    after = before.replace("    assert request.user.is_authenticated\n", "").replace(
        "    membership = get_object_or_404(Member, project=check.project, user=request.user)\n"
        "    return check, membership.is_rw\n",
        "    return check, True\n",
    )
    assert found(scan(tmp_path, "hc/front/views.py", before, after)) == [
        ("security.auth-removed", "block", 2),
        ("security.auth-removed", "block", 4),
    ]


def test_head_that_does_not_parse_is_read_as_text(tmp_path: Path) -> None:
    before = (
        "def admins_only(f):\n"
        "    def wrapper(*args, **kwargs):\n"
        "        if is_admin():\n"
        "            return f(*args, **kwargs)\n"
        "        else:\n"
        "            abort(403)\n"
        "    return wrapper\n"
    )
    after = before.replace(
        "        if is_admin():\n            return f(*args, **kwargs)\n",
        "        return f(*args, **kwargs)\n",
    )
    (f,) = scan(tmp_path, "CTFd/utils/decorators.py", before, after)
    assert (f.rule, f.level, f.line) == ("security.auth-removed", "block", 3)
    assert "no longer parses" in f.message
