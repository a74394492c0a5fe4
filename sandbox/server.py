"""The sandbox CRM's Flask app: SuperOffice Online's REST shapes over real HTTP.

Four parts, one app:

* the tenant's API (``/{tenant}/api/v1/...``, after a move ``/{farm}/{tenant}/api/v1/...``)
  — what the connector talks to, with the same URLs, auth headers, status codes and JSON as
  SuperOffice Online;
* SuperOffice's services at the server root: the system user sign-in
  (``/Login/api/PartnerSystemUser/Authenticate``), the token-signing keys
  (``/login/.well-known/jwks``) and the tenant state API (``/api/state/{tenant}``);
* sandbox controls (``/__sandbox/...``) — faults, the request quota, reset, delivery, call and
  sign-in logs, tickets, tenant state and moves; not part of SuperOffice, no auth;
* a person card (``/`` and ``/{tenant}/person/{id}``) to look at what was written.
"""

from __future__ import annotations

import math
import re
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, abort, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from sandbox.keys import SandboxKeys
from sandbox.login import NETSERVER_SERVICES, TICKET_TTL, SignInRefused, SystemUserLogin
from sandbox.quota import Quota
from sandbox.store import (
    COMMENT_MAX,
    CUSTOMER_LANGUAGES,
    WITHDRAWN,
    ConsentRow,
    Fault,
    ListItem,
    Person,
    Store,
    UnknownKeyError,
    now_text,
)
from sandbox.tenant import TenantPlace
from sandbox.webhooks import Dispatcher, send_test_event

api = Blueprint("api", __name__, url_prefix="/<tenant>/api/v1")
api_root = Blueprint("api_root", __name__, url_prefix="/<tenant>")
online = Blueprint("online", __name__)
controls = Blueprint("controls", __name__, url_prefix="/__sandbox")
pages = Blueprint("pages", __name__)

#: The tenant's API after a move: the same blueprints under ``/<farm>``.
FARM_PREFIX = "/<farm>"
#: Associate id of the default system user (the demo's "consent-connector").
DEFAULT_SYSTEM_USER_ASSOCIATE = 9


def create_sandbox_app(
    tenant: str = "Cust12345",
    tokens: dict[str, int] | None = None,
    *,
    app_token: str | None = None,
    associates: dict[int, str] | None = None,
    retry_delays: tuple[float, ...] | None = None,
    webhook_timeout: float = 10.0,
    data_dir: Path | None = None,
    system_users: dict[str, int] | None = None,
    client_secret: str | None = None,
    ticket_ttl: float = TICKET_TTL,
    ticket_sliding: bool = True,
    state_valid_for: float = 300,
    quota: float | None = None,
) -> Flask:
    """Build the sandbox CRM app.

    Args:
        tenant: the context identifier in every API path (``Cust12345``).
        tokens: accepted Bearer tokens / SOTickets → the caller's associate id.
        app_token: when set, every call with one of ``tokens`` must send it as ``SO-AppToken``.
        associates: associate id → name shown as CreatedBy / on the person card.
        retry_delays: pauses before the 2nd and 3rd webhook attempt; default (1, 4).
        webhook_timeout: seconds a webhook receiver gets to answer.
        data_dir: where the key files live (made when missing); None: a fresh temporary folder.
        system_users: system user token → associate id; default one
            ``consent-connector-<random>`` → 9.
        client_secret: the app's client secret (ApplicationToken, and SO-AppToken with a
            ticket); default: a random one.
        ticket_ttl: seconds a system user ticket lives (6 h, as in SuperOffice).
        ticket_sliding: each accepted call moves the ticket's expiry to now + ``ticket_ttl``
            (SuperOffice's behaviour); False lets it lapse ``ticket_ttl`` after issue.
        state_valid_for: seconds the state API's ValidUntil lies ahead.
        quota: requests per second the tenant's API allows, over it 429 with Retry-After
            (sandbox/quota.py: a model, SuperOffice documents no limit); None: no limit.
    """
    app = Flask(__name__)
    app.json.sort_keys = False
    store = Store(associates)
    dispatcher_args = {} if retry_delays is None else {"retry_delays": retry_delays}
    keys = SandboxKeys.load_or_create(Path(data_dir) if data_dir is not None else _temporary_dir(app))
    login = SystemUserLogin(
        tenant, keys, system_users if system_users is not None else default_system_users(),
        client_secret or secrets.token_urlsafe(24), ticket_ttl=ticket_ttl,
        ticket_sliding=ticket_sliding)
    app.extensions["sandbox"] = {
        "tenant": tenant,
        "tokens": dict(tokens if tokens is not None else {"token": 9}),
        "app_token": app_token,
        "store": store,
        "dispatcher": Dispatcher(store, tenant, timeout=webhook_timeout, **dispatcher_args),
        "webhook_timeout": webhook_timeout,
        "keys": keys,
        "login": login,
        "place": TenantPlace(tenant),
        "state_valid_for": state_valid_for,
        "initial_quota": quota,
        "quota": _new_quota(quota),
    }
    _register_blueprints(app)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _register_blueprints(app: Flask) -> None:
    """Register every blueprint; the tenant's API also once more under ``/<farm>``, so each
    route has one implementation for the initial endpoint and for a moved one."""
    app.register_blueprint(api)
    app.register_blueprint(api, name="api_farm", url_prefix=FARM_PREFIX + api.url_prefix)
    app.register_blueprint(api_root)
    app.register_blueprint(api_root, name="api_root_farm",
                           url_prefix=FARM_PREFIX + api_root.url_prefix)
    app.register_blueprint(online)
    app.register_blueprint(controls)
    app.register_blueprint(pages)


def _temporary_dir(app: Flask) -> Path:
    """A fresh folder for the key files, removed when ``app`` is collected or at exit."""
    folder = Path(tempfile.mkdtemp(prefix="sandbox-keys-"))
    weakref.finalize(app, shutil.rmtree, folder, ignore_errors=True)
    return folder


def _new_quota(per_second: float | None) -> Quota | None:
    """A full quota of ``per_second`` requests a second; None for no limit.

    Raises:
        ValueError: ``per_second`` is not a positive number.
    """
    return None if per_second is None else Quota(per_second)


def default_system_users() -> dict[str, int]:
    """One system user, ``consent-connector-<8 random characters>`` → associate 9 (SuperOffice's
    system user tokens look like ``Application Name-<random characters>``, auth-application/index.md)."""
    return {f"consent-connector-{secrets.token_hex(4)}": DEFAULT_SYSTEM_USER_ASSOCIATE}


def connector_settings(app: Flask, root_url: str) -> dict[str, str]:
    """Return what a connector needs to sign in to this sandbox as its first system user."""
    sandbox = app.extensions["sandbox"]
    login: SystemUserLogin = sandbox["login"]
    keys: SandboxKeys = sandbox["keys"]
    return {
        "SUPEROFFICE_CONTEXT_IDENTIFIER": sandbox["tenant"],
        "SUPEROFFICE_LOGIN_URL": root_url.rstrip("/"),
        "SUPEROFFICE_CLIENT_SECRET": login.client_secret,
        "SUPEROFFICE_SYSTEM_USER_TOKEN": next(iter(login.system_users), ""),
        "SUPEROFFICE_PRIVATE_KEY_FILE": str(keys.app_private_key_file),
        "SUPEROFFICE_TOKEN_CERTIFICATE_FILE": str(keys.token_certificate_file),
    }


def _sandbox() -> dict[str, Any]:
    return current_app.extensions["sandbox"]


def _store() -> Store:
    return _sandbox()["store"]


def _login() -> SystemUserLogin:
    return _sandbox()["login"]


def _place() -> TenantPlace:
    return _sandbox()["place"]


def _root_url() -> str:
    return request.host_url.rstrip("/")


def current_endpoint() -> str:
    """The tenant's endpoint as this request's host reaches it (``http://host:port[/farm]/tenant``)."""
    return _place().endpoint(_root_url())


def error(status: int, message: str, **headers: str):
    """Return a SuperOffice-like JSON error response."""
    response = jsonify({"Error": message, "ErrorType": _ERROR_TYPES.get(status, "Error")})
    response.status_code = status
    response.headers.update(headers)
    return response


_ERROR_TYPES = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed",
                409: "Conflict", 421: "MisdirectedRequest",
                429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}
#: Seconds a caller is told to wait while the tenant's APIs are not available.
UNAVAILABLE_RETRY_AFTER = 30


def _http_error(exc: HTTPException):
    if "/api/" in request.path or request.path.startswith("/__sandbox"):
        response = error(exc.code or 500, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
    return exc


# ---------------------------------------------------------------- API gatekeeping
@api.url_value_preprocessor
@api_root.url_value_preprocessor
def _pop_tenant(endpoint, values):
    g.tenant = values.pop("tenant", None) if values else None
    g.farm = values.pop("farm", None) if values else None


def _tenant_gate():
    """Answer for a request that cannot reach the tenant's API, else None.

    Unknown tenant → 404; an endpoint the tenant is not served at (its old one after a move)
    → 421 Misdirected Request; a State whose APIs are not available (status-page.md) → 503.
    """
    place = _place()
    if g.tenant != place.tenant:
        return error(404, f"Unknown tenant '{g.tenant}'")
    if g.farm != place.farm:
        return error(421, f"Misdirected Request: tenant {place.tenant} is served at "
                          f"{current_endpoint()}; ask the state API /api/state/{place.tenant}")
    if not place.is_running:
        return error(503, f"APIs are not available: the tenant's State is {place.state}",
                     **{"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})
    return None


def _injected_fault():
    """Take the first queued fault matching this call; answer its status (after its delay)."""
    fault = _store().take_fault(request.method, request.path)
    if fault is None:
        return None
    if fault.delay:
        time.sleep(fault.delay)
    if fault.status:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return error(fault.status, f"Injected fault: HTTP {fault.status}", **headers)
    return None


def _over_quota():
    """Take a token from the tenant's quota, if it has one; with none left answer 429 and
    Retry-After (whole seconds until a token is available, at least 1)."""
    quota = _sandbox()["quota"]
    if quota is None:
        return None
    allowed, wait = quota.take()
    if allowed:
        return None
    return error(429, f"Too many requests: the tenant allows {quota.per_second:g} requests "
                      "per second", **{"Retry-After": str(max(1, math.ceil(wait)))})


def _unauthorized(message: str):
    return error(401, message, **{"WWW-Authenticate": "Bearer"})


def _ticket_caller(ticket: str):
    """Authenticate a system user ticket: it needs ``SO-AppToken: <client secret>``
    (auth-application/index.md) and must be unexpired. Sets g.associate_id or answers 401."""
    login = _login()
    if not login.is_client_secret(request.headers.get("SO-AppToken", "")):
        return error(401, "Missing or invalid SO-AppToken header")
    associate_id = login.accept_ticket(ticket)
    if associate_id is None:
        return _unauthorized("Invalid or expired credentials")
    g.associate_id = associate_id
    g.system_user = True
    return None


def _token_caller(scheme: str, credential: str):
    """Authenticate one of the sandbox's static tokens (Bearer or SOTicket)."""
    sandbox = _sandbox()
    if sandbox["app_token"] and request.headers.get("SO-AppToken") != sandbox["app_token"]:
        return error(401, "Missing or invalid SO-AppToken header")
    if scheme not in ("bearer", "soticket") or not credential:
        return _unauthorized("Authorization required: send 'Bearer <token>' or 'SOTicket <ticket>'")
    associate_id = sandbox["tokens"].get(credential)
    if associate_id is None:
        return _unauthorized("Invalid or expired credentials")
    g.associate_id = associate_id
    return None


@api.before_request
def _gatekeeper():
    """Tenant and endpoint, tenant State, the quota, injected faults, then auth — in that
    order, like Online's front door."""
    g.associate_id = None
    g.system_user = False
    refusal = _tenant_gate() or _over_quota() or _injected_fault()
    if refusal is not None:
        return refusal
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    scheme, credential = scheme.lower(), credential.strip()
    if scheme == "soticket" and _login().is_ticket(credential):
        return _ticket_caller(credential)
    return _token_caller(scheme, credential)


@api.after_app_request
def _log_call(response):
    if "/api/v1/" in request.path:
        _store().log_call({
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode("latin-1"),
            "status": response.status_code,
            "associate_id": g.get("associate_id"),
        })
    return response


# ---------------------------------------------------------------- JSON shapes
def associate_json(associate_id: int | None) -> dict | None:
    """Return an Associate carrier for CreatedBy / UpdatedBy."""
    if associate_id is None:
        return None
    name = _store().associate_name(associate_id)
    return {"AssociateId": associate_id, "Name": name, "PersonId": 0, "Rank": 0, "Tooltip": name,
            "Type": "Employee", "GroupIdx": 0, "FullName": name, "FormalName": name,
            "Deleted": False, "EjUserId": 0, "UserName": name}


def list_item_json(item: ListItem | None) -> dict | None:
    """Return a plain list item {Id, Value, Tooltip} (CustomerLanguage's shape)."""
    if item is None:
        return None
    return {"Id": item.id, "Value": item.name, "Tooltip": item.tooltip or item.name}


def consent_json(row: ConsentRow) -> dict:
    """Return a ConsentInfo carrier."""
    return {
        "ConsentPersonId": row.consent_person_id,
        "Comment": row.comment,
        "Registered": row.registered,
        "RegisteredAssociateId": row.registered_associate_id,
        "Updated": row.updated,
        "UpdatedAssociateId": row.updated_associate_id,
        "LegalBaseId": row.legal_base.id,
        "LegalBaseKey": row.legal_base.key,
        "LegalBaseName": row.legal_base.name,
        "ConsentPurposeId": row.purpose.id,
        "ConsentPurposeKey": row.purpose.key,
        "ConsentPurposeName": row.purpose.name,
        "ConsentSourceId": row.source.id,
        "ConsentSourceKey": row.source.key,
        "ConsentSourceName": row.source.name,
    }


def person_json(person: Person) -> dict:
    """Return the PersonEntity carrier (the subset of fields the sandbox keeps)."""
    store = _store()
    full_name = f"{person.firstname} {person.lastname}".strip()
    return {
        "PersonId": person.person_id,
        "Firstname": person.firstname,
        "MiddleName": "",
        "Lastname": person.lastname,
        "FullName": full_name,
        "UpdatedDate": person.updated,
        "CreatedDate": person.created,
        "CreatedBy": associate_json(person.created_by),
        "UpdatedBy": associate_json(person.updated_by),
        "Emails": [dict(e) for e in person.emails],
        "Contact": dict(person.contact, FullName=person.contact["Name"]) if person.contact else None,
        "Country": person.country,
        "NoMailing": person.no_mailing,
        "CustomerLanguage": list_item_json(person.customer_language),
        "Interests": [],
        "ShipmentTypes": shipment_types_json(person),
        "Consents": [consent_json(r) for r in store.consents_of(person.person_id)],
        "_Links": {"Self": f"{current_endpoint()}/api/v1/Person/{person.person_id}"},
    }


def shipment_types_json(person: Person) -> list[dict]:
    """Return PersonEntity.ShipmentTypes: every shipment type with the person's selection,
    in rank order (SelectableMDOListItem's shape)."""
    store = _store()
    return [{"Id": item.id, "Name": item.name, "ToolTip": item.tooltip, "Deleted": False,
             "Rank": item.rank, "Type": "", "ColorBlock": 0, "IconHint": "",
             "Selected": bool(person.shipment_types.get(item.id, False)), "LastChanged": person.updated,
             "ChildItems": [], "ExtraInfo": "", "StyleHint": "", "FullName": item.name}
            for item in sorted(store.shipment_types.values(), key=lambda i: i.rank)]


#: PersonEntity fields PATCH may change in the sandbox, with the Person attribute and type.
_PATCHABLE = {"firstname": ("firstname", str), "lastname": ("lastname", str),
              "nomailing": ("no_mailing", bool)}


class PatchConflict(Exception):
    """A JSON Patch 'test' operation found another value (→ 409)."""


def _apply_json_patch(person: Person, operations: list, entity: dict) -> list[str]:
    """Apply RFC 6902 operations (add/replace/remove/test) to the sandbox's patchable fields;
    return the changed field names. Paths are case-insensitive, the leading slash optional."""
    changes = []
    types = entity["ShipmentTypes"]
    pending_types = dict(person.shipment_types)
    pending_fields = {}
    for op in operations:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove", "test"):
            raise ValueError(f"Unsupported JSON Patch operation {op!r}")
        parts = [p for p in str(op.get("path") or "").strip("/").split("/") if p]
        lowered = [p.lower() for p in parts]
        value = op.get("value")
        if len(parts) == 3 and lowered[0] == "shipmenttypes" and lowered[2] in ("id", "selected"):
            if not parts[1].isdigit() or int(parts[1]) >= len(types):
                raise ValueError(f"Path '{op.get('path')}' does not exist")
            item = types[int(parts[1])]
            if lowered[2] == "id":
                if op["op"] != "test":
                    raise ValueError("ShipmentTypes/n/Id is read-only")
                if item["Id"] != value:
                    raise PatchConflict(f"test failed at {op['path']}")
                continue
            current = pending_types.get(item["Id"], False)
            if op["op"] == "test":
                if current != value:
                    raise PatchConflict(f"test failed at {op['path']}")
                continue
            if not isinstance(value, bool):
                raise ValueError("Selected must be true or false")
            pending_types[item["Id"]] = value
            changes.append("shipmenttypes")
        elif len(parts) == 1 and lowered[0] in _PATCHABLE:
            attribute, kind = _PATCHABLE[lowered[0]]
            if op["op"] == "test":
                if getattr(person, attribute) != value:
                    raise PatchConflict(f"test failed at {op['path']}")
                continue
            if not isinstance(value, kind):
                raise ValueError(f"{parts[0]} must be a {kind.__name__}")
            pending_fields[attribute] = value
            changes.append(lowered[0])
        else:
            raise ValueError(f"The sandbox cannot patch '{op.get('path')}'")
    person.shipment_types = pending_types
    for attribute, value in pending_fields.items():
        setattr(person, attribute, value)
    return changes


def _merge_patch_to_json_patch(body: dict, entity: dict) -> list[dict]:
    """Turn an RFC 7396 merge patch into JSON Patch operations, as SuperOffice does.
    ShipmentTypes items are matched by Id; only their Selected is taken."""
    operations = []
    for name, value in body.items():
        if name.lower() == "shipmenttypes":
            if not isinstance(value, list):
                raise ValueError("ShipmentTypes must be a list")
            index = {item["Id"]: i for i, item in enumerate(entity["ShipmentTypes"])}
            for item in value:
                if not isinstance(item, dict) or item.get("Id") not in index:
                    raise ValueError(f"Unknown shipment type {item!r}")
                if "Selected" in item:
                    operations.append({"op": "replace",
                                       "path": f"/ShipmentTypes/{index[item['Id']]}/Selected",
                                       "value": item["Selected"]})
        else:
            operations.append({"op": "replace", "path": f"/{name}", "value": value})
    return operations


@api.patch("/Person/<int:person_id>")
def patch_person(person_id: int):
    """PATCH Person/{id} with a JSON Patch array or a JSON Merge Patch object → 200 with the
    PersonEntity. Only the fields sent change; a failed 'test' answers 409 and changes nothing."""
    store = _store()
    person = _person_or_404(person_id)
    body = request.get_json(silent=True, force=True)
    with store.lock:
        entity = person_json(person)
        try:
            operations = body if isinstance(body, list) else (
                _merge_patch_to_json_patch(body, entity) if isinstance(body, dict) else None)
            if operations is None:
                return error(400, "Body must be a JSON Patch array or a JSON Merge Patch object")
            changes = _apply_json_patch(person, operations, entity)
        except PatchConflict as exc:
            return error(409, f"Update blocked: {exc}")
        except ValueError as exc:
            return error(400, str(exc))
        if changes:
            person.updated = now_text()
            person.updated_by = g.associate_id
    if changes:
        _fire("person.changed", person, sorted(set(changes)))
    return jsonify(person_json(person)), 200


def _person_or_404(person_id: int) -> Person:
    person = _store().get_person(person_id)
    if person is None:
        abort(404, f"Person {person_id} not found")
    return person


def _fire(event: str, person: Person, changes: list[str]) -> None:
    """Fire a person event with only non-sensitive FieldValues (ids, no names or email)."""
    _sandbox()["dispatcher"].fire(
        event, primary_key=person.person_id, associate_id=g.associate_id, changes=changes,
        field_values={"person_id": person.person_id,
                      "contact_id": person.contact["ContactId"] if person.contact else 0},
    )


# ---------------------------------------------------------------- User
@api.get("/User/currentPrincipal")
def current_principal():
    """GET User/currentPrincipal → the caller's SoPrincipalCarrier, "just the current session
    info" (v1User_GetCurrentPrincipal.md); a system user ticket's caller is a SystemAssociate."""
    name = _store().associate_name(g.associate_id)
    return jsonify({
        "UserType": "SystemAssociate" if g.system_user else "InternalAssociate",
        "Associate": name, "AssociateId": g.associate_id, "IsPerson": False, "PersonId": 0,
        "CountryId": 0, "HomeCountryId": 0, "ContactId": 0, "GroupId": 0, "BusinessId": 0,
        "CategoryId": 0, "ContactOwner": 0, "RoleId": 0, "RoleName": "", "RoleDescription": "",
        "RoleType": "", "Licenses": [], "FullName": name, "EMailAddress": "",
        "FunctionRights": [], "EjUserId": 0, "EjAccessLevel": 0, "EjUserStatus": "",
        "ProvidedCredentials": [], "SecondaryGroups": [],
        "DatabaseContextIdentifier": _place().tenant, "UserName": name,
    })


# ---------------------------------------------------------------- Person
@api.get("/Person/<int:person_id>")
def get_person(person_id: int):
    """GET Person/{id} → PersonEntity, 404 when unknown."""
    return jsonify(person_json(_person_or_404(person_id)))


@api.post("/Person")
def post_person():
    """POST Person → 200 with the created PersonEntity (SuperOffice answers 200, not 201)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "Request body must be a PersonEntity JSON object")
    firstname = str(body.get("Firstname") or "").strip()
    lastname = str(body.get("Lastname") or "").strip()
    if not (firstname or lastname):
        return error(400, "Firstname or Lastname is required")
    emails = []
    for item in body.get("Emails") or []:
        value = str((item or {}).get("Value") or "").strip() if isinstance(item, dict) else ""
        if value:
            emails.append(value)
    contact = body.get("Contact") if isinstance(body.get("Contact"), dict) else None
    language = _customer_language(body.get("CustomerLanguage"))
    if language is False:
        return error(400, f"Unknown CustomerLanguage {body.get('CustomerLanguage')!r}")
    person = _store().create_person(
        firstname=firstname, lastname=lastname, emails=emails,
        contact_name=str(contact.get("Name") or "").strip() or None if contact else None,
        customer_language=language,
        country=body.get("Country") if isinstance(body.get("Country"), dict) else None,
        no_mailing=bool(body.get("NoMailing", False)), associate_id=g.associate_id,
    )
    _fire("person.created", person, ["person_id", "contact_id", "firstname", "lastname",
                                     "registered", "registered_associate_id"])
    return jsonify(person_json(person)), 200


@api.delete("/Person/<int:person_id>")
def delete_person(person_id: int):
    """DELETE Person/{id} → 204 (v1PersonEntity_DeletePersonEntity.md), 404 when unknown; fires
    person.deleted, whose payload carries ``Values`` (associate, contact and person ids)
    instead of FieldValues (docs/en/automation/webhook/reference/person-events.md)."""
    person = _store().delete_person(person_id)
    if person is None:
        abort(404, f"Person {person_id} not found")
    _sandbox()["dispatcher"].fire(
        "person.deleted", primary_key=person_id, associate_id=g.associate_id, changes=[],
        field_values={"associate_id": g.associate_id, "person_id": person_id,
                      "contact_id": person.contact["ContactId"] if person.contact else 0})
    return "", 204


def _customer_language(value: Any) -> ListItem | None | bool:
    """Resolve a CustomerLanguage item by Id or Value; False when it names nothing known."""
    if not value:
        return None
    if isinstance(value, dict):
        for item in CUSTOMER_LANGUAGES:
            if value.get("Id") == item.id or str(value.get("Value") or "").casefold() in (
                    item.name.casefold(), item.key):
                return item
    return False


_ARCHIVE_COLUMNS = {
    "personId": lambda p: p.person_id,
    "firstname": lambda p: p.firstname,
    "lastname": lambda p: p.lastname,
    "fullName": lambda p: f"{p.firstname} {p.lastname}".strip(),
    "contactId": lambda p: p.contact["ContactId"] if p.contact else 0,
    "personRegisteredDate": lambda p: p.created,
    "personUpdatedDate": lambda p: p.updated,
}
_FILTER = re.compile(r"^\s*(\w+)\s+(afterTime|beforeTime|after|before|eq|ne|gt|ge|lt|le)\s+'?([^']*)'?\s*$")


def _comparable(value):
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError:
            return value
    return value


def _matches(person: Person, column: str, op: str, raw: str) -> bool:
    left = _comparable(_ARCHIVE_COLUMNS[column](person))
    right = int(raw) if isinstance(left, int) and raw.lstrip("-").isdigit() else _comparable(raw)
    if op in ("afterTime", "after", "gt"):
        return left > right
    if op in ("beforeTime", "before", "lt"):
        return left < right
    return {"eq": left == right, "ne": left != right, "ge": left >= right, "le": left <= right}[op]


def display_value(value: Any) -> Any:
    """Return an archive cell as SLIM mode's display value: integers as the default English
    culture shows them (``1,234``); strings (dates are ISO strings) and booleans as they are."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return value


def archive_row(person: Person, columns: list[str], logical: bool) -> dict:
    """Return one OData row: PrimaryKey (always the raw id), EntityName and the columns, as
    logical values or display values."""
    cells = {c: _ARCHIVE_COLUMNS[c](person) for c in columns}
    if not logical:
        cells = {name: display_value(value) for name, value in cells.items()}
    return {"PrimaryKey": person.person_id, "EntityName": "person", **cells}


@api.get("/Person")
def list_persons():
    """GET Person → OData list over the Person archive (a small subset of SuperOffice's).

    Supports ``$select`` and ``$orderBy`` over :data:`_ARCHIVE_COLUMNS`, ``$filter`` as
    ``col op 'value'`` clauses joined by ``and`` (ops: afterTime, beforeTime, after, before,
    eq, ne, gt, ge, lt, le), ``$top``, ``$skip`` and ``$output``; anything else answers 400.
    Columns come as SLIM mode's display values ("just the display values",
    v1PersonEntity_GetAll.md) unless ``$output=Logical`` asks for logical ones.
    """
    output = request.args.get("$output", "Display").strip().lower()
    if output not in ("display", "logical"):
        return error(400, f"Unknown $output '{request.args['$output']}': Logical or Display")
    select = [c.strip() for c in request.args.get("$select", "personId,fullName").split(",") if c.strip()]
    clauses = []
    for part in filter(None, re.split(r"\s+and\s+", request.args.get("$filter", "").strip())):
        match = _FILTER.match(part)
        if not match or match.group(1) not in _ARCHIVE_COLUMNS:
            return error(400, f"Unsupported $filter clause '{part}'")
        clauses.append(match.groups())
    order_col, _, direction = request.args.get("$orderBy", "personId").strip().partition(" ")
    unknown = [c for c in select + [order_col] if c not in _ARCHIVE_COLUMNS]
    if unknown:
        return error(400, f"Unknown column(s): {', '.join(unknown)}")
    try:
        top = int(request.args.get("$top", 1000))
        skip = int(request.args.get("$skip", 0))
    except ValueError:
        return error(400, "$top and $skip must be integers")
    try:
        rows = [p for p in _store().list_persons() if all(_matches(p, *c) for c in clauses)]
    except TypeError:
        return error(400, "A $filter value does not fit its column's type")
    rows.sort(key=_ARCHIVE_COLUMNS[order_col], reverse=direction.strip().lower() == "desc")
    page = rows[skip:skip + top]
    base = request.base_url
    body = {
        "odata.metadata": f"{current_endpoint()}/api/v1/archive$metadata",
        "odata.nextLink": (f"{base}?{urlencode({**request.args, '$skip': skip + top})}"
                           if skip + top < len(rows) else None),
        "value": [archive_row(p, select, output == "logical") for p in page],
    }
    return jsonify(body)


# ---------------------------------------------------------------- Consent
@api.get("/Person/<int:person_id>/Consent")
def get_consents(person_id: int):
    """GET Person/{id}/Consent → array of ConsentInfo."""
    _person_or_404(person_id)
    return jsonify([consent_json(r) for r in _store().consents_of(person_id)])


@api.get("/Person/<int:person_id>/Consent/<purpose>")
def has_consent(person_id: int, purpose: str):
    """GET Person/{id}/Consent/{purpose} → true/false (false when missing or withdrawn)."""
    _person_or_404(person_id)
    return jsonify(_store().has_consent(person_id, purpose))


@api.put("/Person/<int:person_id>/Consent/<purpose>")
def set_consent(person_id: int, purpose: str):
    """PUT Person/{id}/Consent/{purpose}?source=&legalBase=&comment= → 204."""
    source = request.args.get("source", "").strip()
    legal_base = request.args.get("legalBase", "").strip()
    comment = request.args.get("comment", "")
    missing = [name for name, value in (("source", source), ("legalBase", legal_base)) if not value]
    if missing:
        return error(400, f"Missing required query parameter(s): {', '.join(missing)}")
    if len(comment) > COMMENT_MAX:
        return error(400, f"comment is {len(comment)} characters; the maximum is {COMMENT_MAX}")
    person = _person_or_404(person_id)
    try:
        row = _store().set_consent(person_id, purpose, source_key=source, legal_base_key=legal_base,
                                   comment=comment, associate_id=g.associate_id)
    except UnknownKeyError as exc:
        return error(400, f"Unknown {exc.kind} key '{exc.key}'")
    event = "person.unconsented" if row.legal_base.key == WITHDRAWN else "person.consented"
    _fire(event, person, ["consentperson_id", "legalbase_id", "consentsource_id", "comment",
                          "updated", "updated_associate_id"])
    return "", 204


@api.delete("/Person/<int:person_id>/Consent/<purpose>")
def remove_consent(person_id: int, purpose: str):
    """DELETE Person/{id}/Consent/{purpose} → 204 ("turn off consent": the row is removed)."""
    person = _person_or_404(person_id)
    try:
        removed = _store().remove_consent(person_id, purpose)
    except UnknownKeyError as exc:
        return error(400, f"Unknown {exc.kind} key '{exc.key}'")
    if removed:
        _fire("person.unconsented", person, ["consentperson_id"])
    return "", 204


# ---------------------------------------------------------------- Lists
def _list_rows(items, id_name: str) -> list[dict]:
    return [{id_name: i.id, "Name": i.name, "Key": i.key, "Tooltip": i.tooltip, "Rank": i.rank,
             "Deleted": False} for i in sorted(items, key=lambda i: i.rank)]


@api.get("/List/ConsentPurpose/Items")
def list_purposes():
    """GET List/ConsentPurpose/Items → the purposes."""
    rows = _list_rows(_store().purposes.values(), "ConsentPurposeId")
    for row in rows:
        row.update(Active=1, ConsentText="", FormText="", PrivacyStatementDesc="", PrivacyStatementUrl="")
    return jsonify(rows)


@api.get("/List/LegalBase/Items")
def list_legal_bases():
    """GET List/LegalBase/Items → the legal bases."""
    return jsonify(_list_rows(_store().legal_bases.values(), "LegalBaseId"))


@api.get("/List/ConsentSource/Items")
def list_sources():
    """GET List/ConsentSource/Items → the consent sources."""
    rows = _list_rows(_store().sources.values(), "ConsentSourceId")
    for row in rows:
        row["MailTemplateId"] = 0
    return jsonify(rows)


# ---------------------------------------------------------------- Webhook
def webhook_json(hook) -> dict:
    """Return a Webhook carrier (the secret is echoed, as SuperOffice does)."""
    return {
        "WebhookId": hook.webhook_id, "Name": hook.name, "Events": list(hook.events),
        "TargetUrl": hook.target_url, "Secret": hook.secret, "State": hook.state, "Type": hook.type,
        "Headers": {}, "Properties": {},
        "Registered": hook.registered, "RegisteredAssociate": associate_json(hook.registered_associate_id),
        "Updated": hook.updated, "UpdatedAssociate": associate_json(hook.updated_associate_id),
        "ErrorsEmail": "",
    }


WEBHOOK_STATES = ("Active", "Stopped", "TooManyErrors")


def webhook_fields(body: dict, default_state: str) -> dict:
    """Validate a Webhook carrier's Name, Events, TargetUrl, Secret and State; return them
    under the Webhook record's attribute names.

    SuperOffice requires an https TargetUrl; the sandbox also accepts http:// because
    its receivers run on localhost without certificates.

    Raises:
        ValueError: a field is missing or malformed; the message says which.
    """
    name = str(body.get("Name") or "").strip()
    target = str(body.get("TargetUrl") or "").strip()
    events = body.get("Events")
    if not name or not target:
        raise ValueError("Name and TargetUrl are required")
    if not target.startswith(("http://", "https://")):
        raise ValueError(f"TargetUrl must be an http(s) URL, got '{target}'")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValueError("Events must be a non-empty list of event names")
    state = str(body.get("State") or default_state)
    if state not in WEBHOOK_STATES:
        raise ValueError(f"Unknown webhook State '{state}'")
    return {"name": name, "events": list(events), "target_url": target,
            "secret": str(body.get("Secret") or ""), "state": state}


@api.post("/Webhook")
def post_webhook():
    """POST Webhook → 200 with the saved webhook, after a test POST to TargetUrl answered 200
    (the test event "is fired when the webhook is being registered", webhooks/reference/test-event.md)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "Request body must be a Webhook JSON object")
    try:
        fields = webhook_fields(body, default_state="Active")
    except ValueError as exc:
        return error(400, str(exc))
    store = _store()
    hook = store.add_webhook(name=fields["name"], events=fields["events"],
                             target_url=fields["target_url"], secret=fields["secret"],
                             state="Stopped", type_=str(body.get("Type") or "webhook"),
                             associate_id=g.associate_id)
    problem = send_test_event(hook, _sandbox()["tenant"], _sandbox()["webhook_timeout"])
    if problem:
        with store.lock:
            store.webhooks.pop(hook.webhook_id, None)
        return error(400, problem)
    hook.state = fields["state"]
    return jsonify(webhook_json(hook)), 200


def _webhook_or_404(webhook_id: int):
    hook = _store().webhooks.get(webhook_id)
    if hook is None:
        abort(404, f"Webhook {webhook_id} not found")
    return hook


def _save_webhook(hook, fields: dict) -> None:
    """Write validated fields to the webhook; setting it Active starts its count of
    consecutive failed attempts afresh, so an operator can re-activate a webhook that went
    TooManyErrors (sandbox/webhooks.py counts them)."""
    with _store().lock:
        if fields["state"] == "Active":
            hook.failed_attempts = 0
        for attribute, value in fields.items():
            setattr(hook, attribute, value)
        hook.updated = now_text()
        hook.updated_associate_id = g.associate_id


@api.put("/Webhook/<int:webhook_id>")
def put_webhook(webhook_id: int):
    """PUT Webhook/{id} → 200 with the webhook, its Name, Events, TargetUrl, Secret and State
    replaced (v1Webhook_PutWebhook.md); 400 for a missing or malformed entity, 404 when unknown.
    A body without State keeps the webhook's State. No test event: that is for registration."""
    hook = _webhook_or_404(webhook_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "Request body must be a Webhook JSON object")
    try:
        fields = webhook_fields(body, default_state=hook.state)
    except ValueError as exc:
        return error(400, str(exc))
    if body.get("Type"):
        fields["type"] = str(body["Type"])
    _save_webhook(hook, fields)
    return jsonify(webhook_json(hook)), 200


#: Webhook properties PATCH may change: lower-case path → carrier name.
_WEBHOOK_PATCHABLE = {"name": "Name", "events": "Events", "targeturl": "TargetUrl",
                      "secret": "Secret", "state": "State"}


def _apply_webhook_patch(carrier: dict, operations: list) -> dict:
    """Apply RFC 6902 operations (add/replace/remove/test) to a Webhook carrier's patchable
    properties; return the patched carrier. Paths are case-insensitive, the leading slash
    optional (v1Webhook_PatchWebhook.md).

    Raises:
        PatchConflict: a 'test' operation found another value.
        ValueError: an operation is malformed or names a property the sandbox cannot patch.
    """
    patched = dict(carrier)
    for op in operations:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove", "test"):
            raise ValueError(f"Unsupported JSON Patch operation {op!r}")
        path = str(op.get("path") or "").strip("/").lower()
        if path not in _WEBHOOK_PATCHABLE:
            raise ValueError(f"The sandbox cannot patch '{op.get('path')}'")
        name = _WEBHOOK_PATCHABLE[path]
        if op["op"] == "test":
            if patched[name] != op.get("value"):
                raise PatchConflict(f"test failed at {op['path']}")
        elif op["op"] == "remove":
            if name != "Secret":
                raise ValueError(f"{name} cannot be removed")
            patched[name] = ""
        else:
            patched[name] = op.get("value")
    return patched


@api.patch("/Webhook/<int:webhook_id>")
def patch_webhook(webhook_id: int):
    """PATCH Webhook/{id} with a JSON Patch array or a JSON Merge Patch object → 200 with the
    webhook (v1Webhook_PatchWebhook.md); a failed 'test' answers 409, 404 when unknown."""
    hook = _webhook_or_404(webhook_id)
    body = request.get_json(silent=True, force=True)
    if isinstance(body, dict):
        body = [{"op": "replace", "path": f"/{name}", "value": value} for name, value in body.items()]
    if not isinstance(body, list):
        return error(400, "Body must be a JSON Patch array or a JSON Merge Patch object")
    try:
        fields = webhook_fields(_apply_webhook_patch(webhook_json(hook), body),
                                default_state=hook.state)
    except PatchConflict as exc:
        return error(409, f"Update blocked: {exc}")
    except ValueError as exc:
        return error(400, str(exc))
    _save_webhook(hook, fields)
    return jsonify(webhook_json(hook)), 200


@api.get("/Webhook")
def get_webhooks():
    """GET Webhook → every webhook with its State."""
    with _store().lock:
        hooks = list(_store().webhooks.values())
    return jsonify([webhook_json(h) for h in hooks])


@api.get("/Webhook/<int:webhook_id>")
def get_webhook(webhook_id: int):
    """GET Webhook/{id} → the webhook, 404 when unknown."""
    return jsonify(webhook_json(_webhook_or_404(webhook_id)))


@api.delete("/Webhook/<int:webhook_id>")
def delete_webhook(webhook_id: int):
    """DELETE Webhook/{id} → 204."""
    with _store().lock:
        if _store().webhooks.pop(webhook_id, None) is None:
            abort(404, f"Webhook {webhook_id} not found")
    return "", 204


# ---------------------------------------------------------------- SuperOffice services at the root
@online.post("/Login/api/PartnerSystemUser/Authenticate")
def authenticate_system_user():
    """Exchange a signed system user token for a JWT carrying a ticket (get-system-user-ticket.md).

    A refusal is still HTTP 200, with IsSuccessful false and the reason in ErrorMessage (the
    documented response shape); only a body that is not a JSON object answers 400.
    """
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        return error(400, "Request body must be a JSON object with SignedSystemToken, "
                          "ApplicationToken, ContextIdentifier and ReturnTokenType")
    try:
        token = _login().authenticate(body, current_endpoint())
    except SignInRefused as refused:
        return jsonify({"IsSuccessful": False, "Token": None, "ErrorMessage": str(refused)})
    return jsonify({"IsSuccessful": True, "Token": token, "ErrorMessage": None})


@online.get("/login/.well-known/jwks")
def jwks():
    """The public keys SuperOffice signs tokens with (validate-security-tokens.md, jwks_uri)."""
    return jsonify({"keys": [_sandbox()["keys"].jwk()]})


@online.get("/api/state/<context_id>")
def tenant_state(context_id: str):
    """The state API (check-status.md, status-page.md): where a tenant is served and whether
    it runs. An unknown context identifier has State Unknown and no endpoint."""
    place = _place()
    valid_until = place.valid_until(_sandbox()["state_valid_for"])
    if context_id != place.tenant:
        return jsonify({"ContextIdentifier": context_id, "Endpoint": None, "State": "Unknown",
                        "IsRunning": False, "ValidUntil": valid_until, "Api": None})
    endpoint = current_endpoint()
    return jsonify({"ContextIdentifier": context_id, "Endpoint": endpoint, "State": place.state,
                    "IsRunning": place.is_running, "ValidUntil": valid_until,
                    "Api": f"{endpoint}/api"})


@api_root.get("/api")
def api_versions():
    """The state API's "Api" link: the tenant's API version block (status-page.md, "API")."""
    refusal = _tenant_gate()
    if refusal is not None:
        return refusal
    endpoint = current_endpoint()
    return jsonify({"v1": f"{endpoint}/api/v1/", "Version": "v1", "NetServerVersion": "10.3.0.0",
                    "NetServer": "SuperOffice sandbox", "Services": NETSERVER_SERVICES})


# ---------------------------------------------------------------- sandbox controls
@controls.post("/faults")
def add_fault():
    """Queue a fault: {"status", "times", "retry_after", "match", "method", "delay"}."""
    body = request.get_json(silent=True) or {}
    status = body.get("status")
    delay = float(body.get("delay") or 0)
    if status is None and not delay:
        return error(400, "Give a status, a delay, or both")
    fault = Fault(status=int(status) if status is not None else None,
                  times=int(body.get("times", 1)),
                  retry_after=int(body["retry_after"]) if body.get("retry_after") is not None else None,
                  match=str(body.get("match") or ""), method=body.get("method"), delay=delay)
    _store().add_fault(fault)
    return jsonify({"queued": fault.__dict__}), 201


@controls.get("/faults")
def queued_faults():
    """The faults still queued, with the times each has left (a test sees one taken)."""
    with _store().lock:
        return jsonify([fault.__dict__ for fault in _store().faults])


@controls.delete("/faults")
def clear_faults():
    """Remove all queued faults."""
    _store().clear_faults()
    return "", 204


def quota_json() -> dict:
    """The quota control's answer: {per_second (null: no limit), served, refused}."""
    quota = _sandbox()["quota"]
    if quota is None:
        return {"per_second": None, "served": 0, "refused": 0}
    return {"per_second": quota.per_second, "served": quota.served, "refused": quota.refused}


@controls.get("/quota")
def current_quota():
    """The tenant's request quota and the API calls it served and refused (429) since it was
    set or the sandbox was reset."""
    return jsonify(quota_json())


@controls.put("/quota")
def set_quota():
    """Set the tenant's request quota ({"per_second": 10}) or remove it ({"per_second": null});
    a new quota starts with a full bucket and its counts at zero."""
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict) or "per_second" not in body:
        return error(400, 'Send {"per_second": <requests per second>} or {"per_second": null}')
    try:
        _sandbox()["quota"] = _new_quota(body["per_second"])
    except ValueError as exc:
        return error(400, str(exc))
    return jsonify(quota_json())


@controls.post("/reset")
def reset():
    """Forget persons, webhooks, deliveries, calls and faults, revocations and sign-ins (keys,
    system users and the tickets issued stay); put the tenant back at its initial endpoint,
    Running, and the quota back to the one the app was created with (none unless
    ``create_sandbox_app(quota=...)``), its bucket full and its counts at zero."""
    _sandbox()["quota"] = _new_quota(_sandbox()["initial_quota"])
    _store().reset()
    _login().reset()
    _place().reset()
    return "", 204


@controls.get("/sign-ins")
def sign_ins():
    """The sign-in log: one {time, successful, error} per Authenticate request."""
    return jsonify(_login().sign_in_log())


@controls.post("/tickets/expire")
def expire_tickets():
    """Let every issued system user ticket lapse now."""
    return jsonify({"expired": _login().expire_tickets()})


@controls.post("/system-users/revoke")
def revoke_system_user():
    """Revoke a system user ({"token": ...}; default: all): sign-ins refused, tickets lapse."""
    body = request.get_json(silent=True, force=True) or {}
    token = body.get("token") if isinstance(body, dict) else None
    try:
        revoked = _login().revoke(token)
    except KeyError:
        return error(404, f"Unknown system user token '{token}'")
    return jsonify({"revoked": revoked})


@controls.post("/tenant/state")
def set_tenant_state():
    """Set the tenant's State ({"State": "OfflineMaintenance"}); names from status-page.md."""
    body = request.get_json(silent=True) or {}
    try:
        _place().set_state(body.get("State") if isinstance(body, dict) else None)
    except ValueError as exc:
        return error(400, str(exc))
    return jsonify({"State": _place().state, "IsRunning": _place().is_running})


@controls.post("/tenant/move")
def move_tenant():
    """Move the tenant to another farm ({"farm": "sod7"}; default the next sod<N>): its API is
    then served at <root>/<farm>/<tenant>, and every other endpoint answers 421."""
    body = request.get_json(silent=True, force=True) or {}
    try:
        _place().move(body.get("farm") if isinstance(body, dict) else None)
    except ValueError as exc:
        return error(400, str(exc))
    endpoint = current_endpoint()
    return jsonify({"Endpoint": endpoint, "Api": f"{endpoint}/api"})


@controls.get("/deliveries")
def deliveries():
    """The webhook delivery log: one entry per attempt."""
    with _store().lock:
        return jsonify(list(_store().deliveries))


@controls.get("/calls")
def calls():
    """The API call log: method, path, query and status (never bodies)."""
    with _store().lock:
        return jsonify(list(_store().calls))


# ---------------------------------------------------------------- person card
@pages.get("/")
def index():
    """List persons with links to their cards."""
    return render_template("index.html", tenant=_sandbox()["tenant"], persons=_store().list_persons())


@pages.get("/<tenant>/person/<int:person_id>")
def person_card(tenant: str, person_id: int):
    """Show a SuperOffice-like person card with the consents table."""
    if tenant != _sandbox()["tenant"]:
        abort(404)
    store = _store()
    person = store.get_person(person_id)
    if person is None:
        abort(404)
    return render_template("person.html", tenant=tenant, person=person,
                           consents=store.consents_of(person_id), name_of=store.associate_name,
                           shipment_types=sorted(store.shipment_types.values(),
                                                 key=lambda item: item.rank))


# ---------------------------------------------------------------- running
def run_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0):
    """Serve ``app`` from a background thread; return ``(server, base_url)``.

    ``port=0`` picks a free port. Stop it with :func:`stop_server`. ``base_url`` is the
    server root (``http://127.0.0.1:PORT``), without the tenant/api prefix.
    """
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="sandbox-crm", daemon=True)
    server.sandbox_thread = thread
    thread.start()
    return server, f"http://{host}:{server.server_port}"


def stop_server(server, timeout: float = 5.0) -> None:
    """Shut down a server started by :func:`run_in_thread` and close its socket."""
    server.shutdown()
    server.server_close()
    thread = getattr(server, "sandbox_thread", None)
    if thread is not None:
        thread.join(timeout)
