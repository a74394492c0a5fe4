"""SuperOffice CRM Online REST client (``CRMClient``): persons, consents, shipment types,
the person list, webhooks and the consent lists.

Wire format: docs/en/api/reference/restful/rest/Person/ in SuperOfficeDocs/superoffice-docs
(v1PersonEntity_GetPersonEntity.md, v1PersonEntity_SetConsent.md). The client does one HTTP
call per method (a listing pages), never retries a write (the job queue does) and turns every
failure into a ``connector.exceptions.CRMError`` whose ``permanent`` flag tells the job whether
to retry. Messages carry person ids and CRM keys, never names or email addresses.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urljoin, urlsplit

import redis
import requests

from connector import JSON_HEADERS, defaults
from connector.crm.budget import CRMBudget, LocalBudget
from connector.crm.http import CRMSession
from connector.crm.types import (COMMENT_MAX_LENGTH, CRMListItem, Person, PersonListing,
                                 Principal, ShipmentType, TenantState, WebhookInfo)
from connector.emails import hide_emails
from connector.exceptions import CRMError, PersonNotFoundError
from connector.settings import Settings
from connector.superoffice.credentials import FixedCredentials, SystemUserCredentials
from connector.superoffice.parse import (parse_list_item, parse_person_entity, parse_person_row,
                                         parse_webhook, unreadable)
from connector.superoffice.system_user import SystemUserLogin
from connector.superoffice.tenant import DiscoveredEndpoint, FixedEndpoint
from connector.times import now, utc

log = logging.getLogger(__name__)


API_URL = "SUPEROFFICE_API_URL"

# The CRM's consent lists, by the config section they match (see config_diff).
CONSENT_LISTS = {"purposes": "ConsentPurpose", "legal_bases": "LegalBase",
                 "sources": "ConsentSource"}

_CRM_TEXT_MAX = 200
_ONLINE_HOST = re.compile(r"^(sod|stage|online)\d*\.superoffice\.com$", re.IGNORECASE)

LIST_COLUMNS = ("personId", "personRegisteredDate", "personUpdatedDate")
"""Archive columns ``list_persons`` selects (docs/en/api/archive-providers/reference/person.md)."""

LIST_PAGE_SIZE = 200
"""Rows asked for per page of ``GET Person``: small pages keep every call short for the CRM."""

LIST_PAGE_SIZE_MAX = 1000
"""Largest ``$top`` the client sends, whatever the caller asks for."""

PAUSES_PER_CALL = 3
"""How often one call is made again after the CRM answered 429/503 with a Retry-After (the
pause is shared by every process: connector.crm.budget); then its CRMError is raised."""


class Credentials(Protocol):
    """What authenticates a call (connector.superoffice.credentials)."""

    variable: str
    """The setting a rejected credential names."""

    def headers(self) -> dict[str, str]: ...

    def renew(self, rejected: dict[str, str]) -> str | None: ...
    """Replace credentials the CRM answered 401 to: ``"fresh"`` (signed in anew), ``"shared"``
    (taken over from another process, possibly about to lapse too), None (cannot)."""


class Budget(Protocol):
    """What paces the calls (connector.crm.budget): CRMBudget, shared through Redis, or a
    LocalBudget."""

    longest_wait: float
    """Most seconds a call waits in place for the CRM's pause."""

    def take(self) -> None: ...
    """Wait until a call may go out, and count it."""

    def pause(self, seconds: float) -> None: ...
    """The CRM asked to pause for ``seconds``."""


class Endpoint(Protocol):
    """Where the tenant's REST API is (connector.superoffice.tenant)."""

    discovered: bool
    """True when the address is looked up (and may move), False for SUPEROFFICE_API_URL."""

    def api_url(self) -> str: ...

    def relocate(self, stale: str) -> str: ...

    def state(self) -> TenantState | None: ...


class SuperOfficeClient:
    """Client for one SuperOffice tenant's REST API (``CRMClient`` protocol).

    Args:
        endpoint: the tenant's base URL up to and including ``/api/v1``, e.g.
            ``https://online3.superoffice.com/Cust12345/api/v1``, or an ``Endpoint`` that
            discovers it (SuperOffice Online moves tenants between hosts).
        credentials: what authenticates the calls (a system user's ticket, renewed on a 401).
            Without it, exactly one of ``access_token`` (sent as ``Authorization: Bearer``) and
            ``ticket`` (``Authorization: SOTicket``), with the optional ``app_token``
            (``SO-AppToken``), is used as it is.
        timeout: (connect, read) seconds for every call.
        session: a ``requests.Session`` to reuse connections; one is created if omitted.
        observe: told ``(method, status, seconds)`` of every call.
        budget: what every call waits for before it goes out: the installation's shared
            CRMBudget, or (default) a LocalBudget that only waits out the CRM's pauses.
    """

    def __init__(self, endpoint: str | Endpoint, *, credentials: Credentials | None = None,
                 access_token: str | None = None, ticket: str | None = None,
                 app_token: str | None = None, timeout: tuple[float, float] = defaults.CRM_TIMEOUT,
                 session: requests.Session | None = None,
                 observe: Callable[[str, int | None, float], None] | None = None,
                 budget: Budget | None = None):
        self._budget = budget or LocalBudget()
        self._endpoint = FixedEndpoint(endpoint) if isinstance(endpoint, str) else endpoint
        self._credentials = credentials or FixedCredentials(access_token=access_token,
                                                            ticket=ticket, app_token=app_token)
        self.timeout = timeout
        self._session = session or CRMSession()
        self._observe = observe

    def __repr__(self) -> str:  # never show the tokens
        return f"SuperOfficeClient({self._endpoint!r})"

    @property
    def api_url(self) -> str:
        """The tenant's REST base now (looked up when it is discovered).

        Raises:
            CRMError: the tenant cannot be located or is not running.
        """
        return self._endpoint.api_url()

    def get_person(self, person_id: int) -> Person:
        """Read a person with their first email, language, company and consent rows.

        One ``GET {api_url}/Person/{id}``: the PersonEntity carries ``Consents[]`` itself.

        Raises:
            PersonNotFoundError: the CRM answered 404.
            CRMError: any other failure; ``permanent`` says whether a retry can help.
        """
        person_id = int(person_id)
        response = self._call("GET", f"Person/{person_id}", (200,),
                              subject=f"person {person_id}", action=f"reading person {person_id}",
                              person_id=person_id)
        try:
            entity = response.json()
        except ValueError:
            raise CRMError("CRM answered 200 with a body that is not JSON",
                           status=response.status_code, permanent=True) from None
        return parse_person_entity(entity)

    def set_consent(self, person_id: int, purpose: str, source: str, legal_basis: str,
                    comment: str) -> None:
        """Create or update the person's consent row for ``purpose`` (all CRM keys).

        ``PUT {api_url}/Person/{id}/Consent/{purpose}?source=&legalBase=&comment=``, which
        answers 204. The comment is cut to the 255 characters the CRM stores.

        Raises:
            PersonNotFoundError: the CRM answered 404.
            CRMError: any other failure; ``permanent`` says whether a retry can help.
        """
        person_id = int(person_id)
        query = urlencode({"source": source, "legalBase": legal_basis,
                           "comment": (comment or "")[:COMMENT_MAX_LENGTH]}, quote_via=quote)
        url = f"Person/{person_id}/Consent/{quote(purpose, safe='')}?{query}"
        subject = f"consent {purpose} for person {person_id}"
        self._call("PUT", url, (204, 200), subject=subject, action=f"writing {subject}",
                   person_id=person_id)

    def set_shipment_types(self, person_id: int, selection: Mapping[int, bool],
                           current: tuple[ShipmentType, ...]) -> None:
        """Change the person's shipment type selection, and nothing else.

        ``PATCH {api_url}/Person/{id}`` with a JSON Patch (RFC 6902) body, which SuperOffice
        accepts besides a merge patch (v1PersonEntity_PatchPersonEntity.md). Per changed type,
        at its index in ``PersonEntity.ShipmentTypes`` as read in ``current``::

            {"op": "test",    "path": "/ShipmentTypes/1/Id",       "value": 2}
            {"op": "test",    "path": "/ShipmentTypes/1/Selected", "value": false}
            {"op": "replace", "path": "/ShipmentTypes/1/Selected", "value": true}

        Only the listed paths change, so a name, email or anything else a CRM user edited
        meanwhile stays as it is (a PUT of the whole entity would write our older copy back).
        The ``test`` operations make the CRM refuse the whole patch with 409 when the list or
        that selection moved since it was read; that is a transient CRMError: the job's retry
        reads the person again and decides anew.

        Raises:
            PersonNotFoundError: the CRM answered 404.
            CRMError: any other failure; ``permanent`` says whether a retry can help.
        """
        person_id = int(person_id)
        operations = []
        for index, shipment_type in enumerate(current):
            if shipment_type.id not in selection:
                continue
            path = f"/ShipmentTypes/{index}"
            operations += [
                {"op": "test", "path": f"{path}/Id", "value": shipment_type.id},
                {"op": "test", "path": f"{path}/Selected", "value": shipment_type.selected},
                {"op": "replace", "path": f"{path}/Selected",
                 "value": bool(selection[shipment_type.id])},
            ]
        missing = set(selection) - {t.id for t in current}
        if missing:
            raise ValueError(f"shipment type(s) {sorted(missing)} are not among the person's")
        if not operations:
            return
        subject = f"shipment types of person {person_id}"
        self._call("PATCH", f"Person/{person_id}", (200, 204), subject=subject,
                   action=f"writing {subject}", person_id=person_id, json_body=operations,
                   content_type="application/json-patch+json")

    def list_persons(self, changed_since: datetime | None,
                     page_size: int = LIST_PAGE_SIZE) -> Iterator[PersonListing]:
        """Yield every person registered or updated after ``changed_since`` (every person when
        None), each once, page by page, one call at a time.

        ``GET {api_url}/Person`` is an OData list over the "Person" archive
        (v1PersonEntity_GetAll.md): ``$select`` the id and both dates, ``$filter`` with the
        date-time operator ``afterTime`` and a quoted UTC value
        (docs/en/api/search/odata/datetime.md), ``$orderBy``, ``$top``; the answer is
        ``{odata.metadata, odata.nextLink, value: [{PrimaryKey, EntityName, <columns>}]}``.

        1. With a date, two listings run one after the other, ``personRegisteredDate afterTime``
           and ``personUpdatedDate afterTime``: a new person is found whether or not the CRM
           stamps the updated date when a person is created. A person in both is yielded once.
        2. Pages are ordered by ``personId``, not by date: a person changed while the listing
           runs keeps their place, so ``$skip`` paging (what ``odata.nextLink`` carries) skips
           nobody; new persons come at the end.
        3. ``odata.nextLink`` is followed; it must stay on the API's scheme and host, since it
           gets the credentials. Without one, a full page is followed by ``$skip``.
        4. A listing is many calls: a page answered 429 or 503 with a short Retry-After is
           asked again after the pause (as every call is: ``_call``), not started over.

        Args:
            changed_since: aware datetime (a naive one is taken as UTC), or None for all.
            page_size: ``$top``, at most LIST_PAGE_SIZE_MAX.

        Raises:
            ValueError: ``page_size`` is not positive.
            CRMError: a call failed (``permanent`` says whether a retry can help), or an answer
                is not an OData person list.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        page_size = min(int(page_size), LIST_PAGE_SIZE_MAX)
        if changed_since is None:
            filters: list[str | None] = [None]
        else:
            when = odata_datetime(changed_since)
            filters = [f"personRegisteredDate afterTime '{when}'",
                       f"personUpdatedDate afterTime '{when}'"]
        seen: set[int] = set()
        for odata_filter in filters:
            for listing in self._list_person_archive(odata_filter, page_size):
                if listing.person_id not in seen:
                    seen.add(listing.person_id)
                    yield listing

    def list_webhooks(self) -> list[WebhookInfo]:
        """Return the webhooks registered in the CRM with their State: one ``GET {api_url}/Webhook``
        (docs/en/api/reference/restful/rest/Webhook/v1Webhook_GetAllWebhooks.md; State is
        Active, Stopped or TooManyErrors).

        Raises:
            CRMError: the call failed or the answer is not a list of webhooks. SuperOffice
                Online answers 403 when the app was not granted access to webhooks.
        """
        body = self._get_json("Webhook", "the webhook list", action="listing webhooks")
        if not isinstance(body, list):
            raise unreadable("a webhook list that is not an array")
        return [parse_webhook(item, where=f"webhook list item {i}") for i, item in enumerate(body)]

    def consent_lists(self) -> dict[str, list[CRMListItem]]:
        """Return the tenant's consent purposes, legal bases and sources, by kind ("purposes",
        "legal_bases", "sources"): ``GET {api_url}/List/<ConsentPurpose|LegalBase|
        ConsentSource>/Items`` (docs/en/api/reference/restful/rest/List_ConsentPurpose/ …).

        Raises:
            CRMError: a call failed or an answer is not a list.
        """
        lists = {}
        for kind, list_name in CONSENT_LISTS.items():
            rows = self._get_json(f"List/{list_name}/Items", f"the {list_name} list",
                                  action=f"reading the {list_name} list")
            if not isinstance(rows, list):
                raise unreadable(f"a {list_name} list that is not an array of items")
            lists[kind] = [parse_list_item(row, where=f"{list_name} item {i}")
                           for i, row in enumerate(rows)]
        return lists

    def current_principal(self) -> Principal:
        """Who the connector is: ``GET {api_url}/User/currentPrincipal``, which "returns the
        current session info" without calling an agent (v1User_GetCurrentPrincipal.md). It
        signs in first when needed, so it checks the credentials and the address at once.

        Raises:
            CRMError: the call failed, or the answer has no AssociateId.
        """
        body = self._get_json("User/currentPrincipal", "the current principal",
                              action="asking who the connector is")
        associate_id = body.get("AssociateId") if isinstance(body, Mapping) else None
        if not isinstance(associate_id, int) or isinstance(associate_id, bool):
            raise unreadable("a current principal without AssociateId")
        context = body.get("DatabaseContextIdentifier")
        return Principal(associate_id=associate_id,
                         context_identifier=context if isinstance(context, str) else None)

    def tenant_state(self) -> TenantState | None:
        """The tenant's state from SuperOffice's state API (shared, looked up when nobody
        has), or None for a fixed SUPEROFFICE_API_URL.

        Raises:
            CRMError: (transient) the state API cannot be reached.
        """
        return self._endpoint.state()

    def _get_json(self, path: str, subject: str, *, action: str) -> Any:
        """GET ``{api_url}/{path}`` (not about a person: a 404 means a wrong address) and
        return its JSON body.

        Raises:
            CRMError: the call failed or the body is not JSON.
        """
        response = self._call("GET", path, (200,), subject=subject, action=action,
                              not_found=f"GET {path}")
        try:
            return response.json()
        except ValueError:
            raise unreadable(f"{subject} that is not JSON") from None

    def _list_person_archive(self, odata_filter: str | None,
                             page_size: int) -> Iterator[PersonListing]:
        params = {"$select": ",".join(LIST_COLUMNS)}
        if odata_filter:
            params["$filter"] = odata_filter
        params.update({"$orderBy": "personId", "$top": str(page_size)})
        url = f"Person?{_query(params)}"
        position = 0
        previous: list[int] = []
        while True:
            body = self._list_page(url)
            rows = body.get("value")
            if not isinstance(rows, list):
                raise unreadable("a person list without a 'value' array")
            listings = [parse_person_row(row, where=f"person list row {position + i}")
                        for i, row in enumerate(rows)]
            ids = [listing.person_id for listing in listings]
            if ids and ids == previous:
                raise CRMError("CRM answered the same page of the person list twice; the list "
                               "cannot be followed", status=200, permanent=True)
            previous = ids
            yield from listings
            position += len(listings)
            next_link = body.get("odata.nextLink")
            if next_link:
                next_url = self._same_origin(str(next_link))
                if next_url == url:
                    raise CRMError("CRM's odata.nextLink repeats the page it came with; the person "
                                   "list cannot be followed", status=200, permanent=True)
                url = next_url
            elif len(listings) >= page_size:
                url = f"Person?{_query({**params, '$skip': str(position)})}"
            else:
                return

    def _list_page(self, url: str) -> Mapping:
        """GET one page of the person list."""
        response = self._call("GET", url, (200,), subject="the person list",
                              action="listing persons", not_found="the person list (GET Person)")
        try:
            body = response.json()
        except ValueError:
            raise unreadable("a person list that is not JSON") from None
        if not isinstance(body, Mapping):
            raise unreadable("a person list that is not an object")
        return body

    def _same_origin(self, link: str) -> str:
        """Resolve an odata.nextLink against the API URL into a path below it; refuse one on
        another scheme or host, or outside the API."""
        api_url = self.api_url
        url = urljoin(api_url + "/", link)
        here, there = urlsplit(api_url), urlsplit(url)
        if (there.scheme, there.netloc.lower()) != (here.scheme, here.netloc.lower()):
            raise CRMError(f"CRM's odata.nextLink points to {there.scheme}://{there.netloc}, not "
                           f"the API's host; not sending the connector's credentials there",
                           status=200, permanent=True)
        if not url.startswith(api_url + "/"):
            raise CRMError(f"CRM's odata.nextLink points outside the API ({there.path})",
                           status=200, permanent=True)
        return url[len(api_url) + 1:]

    # -- one HTTP call, every failure mapped -------------------------------------------------

    def _call(self, method: str, path: str, expected: tuple[int, ...], *, subject: str,
              action: str, person_id: int | None = None, not_found: str | None = None,
              json_body: Any = None,
              content_type: str = "application/json") -> requests.Response:
        """Make one call to ``{api_url}/{path}`` and return the answer if its status is
        expected, else raise the CRMError it means.

        1. A 401 renews the credentials (a system user signs in again, or takes the ticket
           another process signed in for) and the call is made again; a 401 to a ticket just
           signed in for is final.
        2. A tenant that moved (421 Misdirected Request, a redirect, or a host that refuses or
           does not resolve) is looked up again and the call made once more at the new address
           (docs/en/apps/tenant-status/status-page.md).
        3. A 429 or 503 with a Retry-After pauses every process's calls that long (the
           budget's shared pause) and the call is made again after it, up to PAUSES_PER_CALL
           times; a pause longer than CRM_WAIT_IN_PLACE sends the job back to the queue.
        """
        data = json.dumps(json_body).encode() if json_body is not None else None
        renewal: str | None = None
        renewals = 0
        relocated = False
        pauses = 0
        while True:
            api_url = self._endpoint.api_url()
            credentials = self._credentials.headers()
            headers = {**credentials, **JSON_HEADERS}
            if data is not None:
                headers["Content-Type"] = content_type
            try:
                response = self._send(method, f"{api_url}/{path}", headers, data)
            except requests.exceptions.ConnectionError as error:
                if (self._endpoint.discovered and not relocated
                        and not isinstance(error, requests.exceptions.ConnectTimeout)):
                    relocated = True
                    self._endpoint.relocate(api_url)
                    continue
                raise self._transport_error(error, action) from None
            except requests.exceptions.RequestException as error:
                raise self._transport_error(error, action) from None
            status = response.status_code
            if status == 401 and renewal != "fresh" and renewals < 3:
                renewal = self._credentials.renew(credentials)
                renewals += 1
                if renewal:
                    continue
            if ((status == 421 or 300 <= status < 400) and self._endpoint.discovered
                    and not relocated):
                relocated = True
                self._endpoint.relocate(api_url)
                continue
            retry_after = (parse_retry_after(response.headers.get("Retry-After"))
                           if status in (429, 503) else None)
            if retry_after is not None:
                log.info("crm.paused status=%s retry_after=%g", status, retry_after)
                with _budget_in_redis():
                    self._budget.pause(retry_after)
                if retry_after <= self._budget.longest_wait and pauses < PAUSES_PER_CALL:
                    pauses += 1
                    continue
            break
        if status in expected:
            return response
        if status == 404 and person_id is not None and not self._api_root_answers(api_url):
            raise CRMError(f"CRM answered 404 for person {person_id}, and its API root "
                           f"({api_url}) does not answer either — check SUPEROFFICE_API_URL",
                           status=404, permanent=True, setting=API_URL)
        raise self._error(response, subject=subject, action=action, person_id=person_id,
                          not_found=not_found, patch=method == "PATCH", renewal=renewal)

    def _send(self, method: str, url: str, headers: dict[str, str],
              data: bytes | None) -> requests.Response:
        """Send one request once the budget allows it."""
        with _budget_in_redis():
            self._budget.take()
        started = time.monotonic()
        status = None
        try:
            response = self._session.request(method, url, headers=headers, data=data,
                                             timeout=self.timeout, allow_redirects=False)
            status = response.status_code
        finally:
            if self._observe is not None:
                self._observe(method, status, time.monotonic() - started)
        log.debug("%s %s -> %s in %.0f ms", method, urlsplit(url).path, status,
                  (time.monotonic() - started) * 1000)
        return response

    def _transport_error(self, error: requests.exceptions.RequestException,
                         action: str) -> CRMError:
        """The CRMError for a call that got no answer."""
        if isinstance(error, requests.exceptions.ConnectTimeout):
            return CRMError(f"CRM unreachable: connection timed out after {self.timeout[0]:g} s "
                            f"({action})")
        if isinstance(error, requests.exceptions.Timeout):
            return CRMError(f"CRM unreachable: timed out after {self.timeout[1]:g} s ({action})")
        if isinstance(error, requests.exceptions.ConnectionError):
            return CRMError(f"CRM unreachable: {type(error).__name__} ({action})")
        if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                              requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader,
                              requests.exceptions.TooManyRedirects)):
            return CRMError(f"CRM call impossible: {type(error).__name__} — check "
                            f"SUPEROFFICE_API_URL and the tokens ({action})", permanent=True,
                            setting=API_URL)
        return CRMError(f"CRM call failed: {type(error).__name__} ({action})")

    def _api_root_answers(self, api_url: str) -> bool:
        """True when the API's root (``…/api``, the version block of status-page.md) answers
        200: then a 404 means the thing asked for is gone, not a wrong address."""
        root = api_url.removesuffix("/v1")
        try:
            response = self._send("GET", root, {**self._credentials.headers(), **JSON_HEADERS},
                                  None)
        except requests.exceptions.RequestException:
            return False
        return response.status_code == 200

    def _error(self, response: requests.Response, *, subject: str, action: str,
               person_id: int | None, not_found: str | None = None,
               patch: bool = False, renewal: str | None = None) -> CRMError:
        """Map a status the call did not expect to a CRMError. A 404 means the person is gone
        on calls about a person (``person_id``), a wrong API URL on the others (``not_found``
        names what was asked for)."""
        status = response.status_code
        if status == 404:
            if person_id is None:
                return CRMError(f"CRM answered 404 for {not_found or subject} — check "
                                f"SUPEROFFICE_API_URL", status=404, permanent=True,
                                setting=API_URL)
            return PersonNotFoundError(person_id)
        if status == 400:
            text = _crm_error_text(response)
            detail = f": {text}" if text else ""
            return CRMError(f"CRM refused {subject} (400){detail}", status=400, permanent=True)
        if status == 401 and renewal == "fresh":
            return CRMError(f"CRM rejected a ticket SuperOffice had just issued (401) — check "
                            f"SUPEROFFICE_CLIENT_SECRET (sent as SO-AppToken) ({action})",
                            status=401, permanent=True, setting="SUPEROFFICE_CLIENT_SECRET")
        if status == 401 and renewal == "shared":
            return CRMError(f"CRM rejected the shared ticket again (401); signing in on the next "
                            f"attempt ({action})", status=401)
        if status in (401, 403):
            what = ("renew " if status == 401 else "check the rights of ") + self._credentials.variable
            return CRMError(f"CRM rejected the connector's credentials ({status}) — {what} / "
                            f"SUPEROFFICE_APP_TOKEN ({action})", status=status, permanent=True,
                            setting=self._credentials.variable)
        if patch and status in (409, 412):
            # A JSON Patch "test" failed: the person changed since we read them. Transient:
            # the retry reads them again and decides on what the CRM holds then.
            return CRMError(f"CRM refused {subject} ({status}): the person changed since they "
                            f"were read; reading them again on the next attempt",
                            status=status)
        if status == 421:
            # SuperOffice Online moves tenants between hosts (sod2 -> sod3 ...); the old host
            # answers 421 Misdirected Request. The current host is in the tenant state API:
            # docs/en/apps/tenant-status/check-status.md, status-page.md (field "Api").
            if self._endpoint.discovered:
                return CRMError(f"CRM answered 421 Misdirected Request at the address the state "
                                f"API gave; looking it up again later ({action})", status=421,
                                retry_after=defaults.TENANT_STATE_MIN_AGE)
            return CRMError(f"CRM answered 421 Misdirected Request: the tenant moved to another "
                            f"host; look up its current API address at {self._state_url()} and "
                            f"update SUPEROFFICE_API_URL, or unset it to let the connector find "
                            f"the tenant ({action})", status=421, permanent=True,
                            setting=API_URL)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
            what = "is rate limiting the connector" if status == 429 else "failed"
            return CRMError(f"CRM {what} ({status}) while {action}{wait}", status=status,
                            retry_after=retry_after)
        return CRMError(f"CRM answered unexpected status {status} while {action}", status=status,
                        permanent=True)

    def _state_url(self) -> str:
        parts = urlsplit(self._endpoint.api_url())
        match = _ONLINE_HOST.match(parts.hostname or "")
        environment = match.group(1).lower() if match else "online"
        context_id = next((p for p in parts.path.split("/") if p), "{ContextId}")
        return f"https://{environment}.superoffice.com/api/state/{context_id}"


@contextlib.contextmanager
def _budget_in_redis() -> Iterator[None]:
    """Turn the budget's Redis failing into a transient CRMError: no call goes out that the
    budget has not counted, and callers handle it as the CRM being unavailable."""
    try:
        yield
    except redis.RedisError as error:
        raise CRMError(f"the CRM request budget cannot be read from Redis "
                       f"({type(error).__name__}); not calling the CRM uncounted") from None


def odata_datetime(when: datetime) -> str:
    """Format a datetime as the quoted value of an OData date-time restriction: UTC, whole
    seconds, no offset (``2020-05-28T15:00:01``, docs/en/api/search/odata/datetime.md). A naive
    datetime is taken as UTC."""
    return utc(when).strftime("%Y-%m-%dT%H:%M:%S")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, (utc(when) - now()).total_seconds())


def _query(params: Mapping[str, str]) -> str:
    """Encode OData query options: spaces as %20 (never '+'), '$' and ',' kept readable."""
    return urlencode(params, quote_via=quote, safe="$,")


def _crm_error_text(response: requests.Response) -> str:
    """The CRM's own error text from an error body, cleaned of email addresses and cut short."""
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
        if "text/plain" in response.headers.get("Content-Type", ""):
            text = response.text
    if isinstance(body, str):
        text = body
    elif isinstance(body, Mapping):
        for key in ("Error", "Message", "ErrorMessage", "error", "message"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                text = value
                break
    text = " ".join(hide_emails(text).split())
    if len(text) > _CRM_TEXT_MAX:
        text = text[:_CRM_TEXT_MAX - 1] + "…"
    return text


def client_from_settings(settings: Settings, connection: redis.Redis, budget: CRMBudget,
                         observe: Callable[[str, int | None, float], None] | None = None
                         ) -> SuperOfficeClient:
    """Return the client for the tenant and credentials in the settings: the system user's
    shared ticket and the discovered address (SuperOffice Online), or the fixed
    SUPEROFFICE_API_URL and token (on-site). Every call waits for the shared ``budget``;
    ``observe(method, status, seconds)`` is told about every call (see
    connector.metrics.crm_observer).

    Raises:
        SettingsError: the private key or the certificate file cannot be used.
    """
    system_user = settings.system_user
    if system_user is None:
        return SuperOfficeClient(settings.superoffice_api_url,
                                 access_token=settings.superoffice_access_token,
                                 ticket=settings.superoffice_ticket,
                                 app_token=settings.superoffice_app_token,
                                 timeout=defaults.CRM_TIMEOUT, observe=observe,
                                 budget=budget)
    session = CRMSession()
    credentials = SystemUserCredentials(SystemUserLogin(system_user, session=session), connection)
    endpoint = (settings.superoffice_api_url or
                DiscoveredEndpoint(system_user.state_url, system_user.context_identifier,
                                   connection, hint=lambda: credentials.api_url_hint,
                                   session=session))
    return SuperOfficeClient(endpoint, credentials=credentials, timeout=defaults.CRM_TIMEOUT,
                             session=session, observe=observe, budget=budget)
