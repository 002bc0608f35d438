"""Eventual consistency (issue 18): what a reader of AWS sees lags behind what was written.
Off by default (`consistency.enabled`); when on, for API reads only:

- a created resource is missing from its service's describes and lists (filtered or not) and
  a read by its id or name answers the service's own NotFound, for a delay drawn per resource
  (`visible_after`); the Resource Groups Tagging API shows it at the later of that delay and a
  draw of its own (`visible_after.tagging`);
- a tag added to an existing resource (EC2 CreateTags, ELBv2 AddTags, RDS AddTagsToResource,
  Auto Scaling CreateOrUpdateTags) is missing from tag filters, from the resource's tags in EC2
  and Auto Scaling describes, and from the tagging API, for a delay (`tags_after`); tags given
  in the create call come with the resource;
- a deleted resource keeps showing in reads, as it was or in its deleted state, for a delay
  (`linger`); a write on it answers NotFound, as for any resource that is gone;
- a new IAM role or instance profile is refused by RunInstances, CreateAutoScalingGroup and
  UpdateAutoScalingGroup for a delay (`iam_usable_after`), with AWS's error.

Every delay is a pure function of (seed, service, kind, resource id), like the fault draws in
faults.py: which resource lags how long does not depend on the order of calls.

How: moto's backend methods are wrapped (as lifecycle.py does). A create or delete method is
diffed (the kind's resources before and after the call), so a resource is recorded however moto
made or removed it. A read method of a service, while that service's API read is served
(context.py) and not signed with `exempt_access_key`, runs against a *view* of its backend: an
object that answers moto's storage attributes (`vpcs`, `subnets`, `load_balancers`, ...) with
copies in which hidden resources are missing and lingering ones are back, and forwards
everything else to the backend. So moto applies its own filters, pagination and unknown-id
errors, in the caller's protocol, exactly as it would for a resource that does not exist.
Internal reads (moto's write paths, the data plane, the strict layer's guards) see the truth.
"""

from __future__ import annotations

import copy
import threading
import time
import types
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from . import context
from .config import CONSISTENCY_KINDS, Config
from .faults import draw
from .protocol import AwsError, AwsRequest

Scope = tuple[str, str]  # (account, region) of a moto backend
Key = tuple[str, str, str, str, str]  # (account, region, service, kind, resource id)


@dataclass
class Created:
    """A resource made through the API while the model was on."""

    at: float
    service: str
    kind: str
    ident: str | None
    # A resource made by the create of another of its service (a VPC's main route table and
    # default security group) shows together with it.
    parent: "Created | None" = None


@dataclass
class Gone:
    """A resource deleted through the API while the model was on."""

    obj: Any
    # When it left moto's storage; None while moto (or lifecycle.py) still holds it, e.g. a DB
    # cluster `deleting`: it lingers from its removal.
    at: float | None
    # How the tagging API showed it, to show it there as long.
    tagged: Any = None


@dataclass
class TagChange:
    at: float
    kind: str
    key: str
    value: str
    previous: str | None  # None: the key was not there


@dataclass
class _Frame:
    """A create method running on this thread (creates nest: CreateVpc makes a route table)."""

    service: str
    record: Created


# --- where each kind lives in its moto backend --------------------------------------------------


def _empty_like(storage):
    if isinstance(storage, defaultdict):
        return defaultdict(storage.default_factory)
    return type(storage)()


class DictStore:
    """`backend.<attr>` is {key: resource}."""

    def __init__(self, attr: str, key: Callable[[Any], str] | None = None) -> None:
        self.attr = attr
        self.key = key

    def objects(self, storage) -> list:
        return list(storage.values())

    def view(self, storage, transform: Callable, extra: list):
        view = _empty_like(storage)
        for key, obj in list(storage.items()):
            shown = transform(obj)
            if shown is not None:
                view[key] = shown
        for obj in extra:
            view[self.key(obj)] = obj
        return view

    def derived(self, view) -> dict:
        return {}


class NestedStore:
    """`backend.<attr>` is {group: {key: resource}} (subnets by zone, security groups by VPC)."""

    def __init__(self, attr: str, group: Callable[[Any], str], key: Callable[[Any], str]) -> None:
        self.attr, self.group, self.key = attr, group, key

    def objects(self, storage) -> list:
        return [obj for inner in list(storage.values()) for obj in list(inner.values())]

    def view(self, storage, transform: Callable, extra: list):
        view = _empty_like(storage)
        for group, inner in list(storage.items()):
            view[group] = {key: shown for key, obj in list(inner.items()) if (shown := transform(obj)) is not None}
        for obj in extra:
            view.setdefault(self.group(obj), {})[self.key(obj)] = obj
        return view

    def derived(self, view) -> dict:
        return {}


class ListStore:
    """`backend.<attr>` is a list (elastic IPs)."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def objects(self, storage) -> list:
        return list(storage)

    def view(self, storage, transform: Callable, extra: list):
        return [shown for obj in list(storage) if (shown := transform(obj)) is not None] + list(extra)

    def derived(self, view) -> dict:
        return {}


class LaunchTemplateStore(DictStore):
    """Launch templates, and moto's index of them by name (describes by name go through it)."""

    def __init__(self) -> None:
        super().__init__("launch_templates", key=lambda template: template.id)

    def derived(self, view) -> dict:
        return {"launch_template_name_to_ids": {template.name: template.id for template in view.values()}}


class ReservationStore:
    """Instances, inside reservations: a reservation of hidden instances is shown without them."""

    attr = "reservations"

    def objects(self, storage) -> list:
        return [instance for reservation in list(storage.values()) for instance in list(reservation.instances)]

    def view(self, storage, transform: Callable, extra: list):
        view = _empty_like(storage)
        for key, reservation in list(storage.items()):
            shown = [s for instance in list(reservation.instances) if (s := transform(instance)) is not None]
            if len(shown) == len(reservation.instances):
                view[key] = reservation
            elif shown:
                # moto's all_reservations copies reservations too: the copy is never stored.
                partial = copy.copy(reservation)
                partial.instances = shown
                view[key] = partial
        return view  # terminated instances stay in moto: nothing lingers here

    def derived(self, view) -> dict:
        return {}


class ListenerStore:
    """Listeners, inside their load balancers: a balancer with a hidden or lingering listener is
    shown as a copy with its listeners as readers see them."""

    attr = "load_balancers"

    def objects(self, storage) -> list:
        return [listener for balancer in list(storage.values()) for listener in list(balancer.listeners.values())]

    def view(self, storage, transform: Callable, extra: list):
        view = _empty_like(storage)
        extra_by_balancer: dict[str, list] = {}
        for listener in extra:
            extra_by_balancer.setdefault(listener.load_balancer_arn, []).append(listener)
        for arn, balancer in list(storage.items()):
            listeners = {
                key: shown for key, listener in list(balancer.listeners.items())
                if (shown := transform(listener)) is not None
            }
            for listener in extra_by_balancer.get(arn, []):
                listeners[listener.arn] = listener
            if listeners.keys() == balancer.listeners.keys():
                view[arn] = balancer
            else:
                shown_balancer = copy.copy(balancer)
                shown_balancer.listeners = listeners
                view[arn] = shown_balancer
        return view

    def derived(self, view) -> dict:
        return {}


@dataclass
class Kind:
    service: str  # SigV4 signing name, as in requests and settings
    name: str
    backend: type  # the moto class whose methods are wrapped
    store: Any
    ident: Callable[[Any], str]  # the id or name callers use
    creates: tuple = ()
    deletes: tuple = ()
    reads: tuple = ()
    # (backend, resource) -> its ARN in the tagging API; None: not shown there.
    arn: Callable[[Any, Any], str] | None = None
    # Show a lingering resource as AWS does after its delete (and undo what moto cleared).
    gone_state: Callable[[Any, str], None] | None = None
    # (resource, the tags a reader sees) -> the resource as shown: for kinds whose describes
    # carry tags as an attribute (EC2's are read through get_tags, patched below).
    with_tags: Callable[[Any, dict], Any] | None = None
    # For reads where moto answers an unknown id with an empty list but AWS with an error:
    # (positional arguments, keyword arguments, ids hidden) -> the error to raise, or None.
    missing: Callable[[tuple, dict, set], Exception | None] | None = None

    @property
    def label(self) -> str:
        return f"{self.service}:{self.name}"


# --- the model -----------------------------------------------------------------------------------


class Consistency:
    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._lock = threading.RLock()
        self._local = threading.local()
        self._created: dict[Key, Created] = {}
        self._arns: dict[str, Created] = {}  # ARN -> record, for the tagging API
        self._gone: dict[Key, Gone] = {}
        self._tags: dict[tuple, list[TagChange]] = {}  # (account, region, service, id) -> changes
        self._links: dict[tuple, float] = {}  # (account, profile, role) -> when the role was added

    # -- when the model applies --

    @property
    def enabled(self) -> bool:
        return self._config().consistency["enabled"]

    def recording(self) -> bool:
        """Creates, deletes and tag changes are recorded when made through the API, model on
        (not what moto makes while it builds a backend: a region's default VPC, subnets and
        security group are there from the start)."""
        return self.enabled and context.current() is not None and not getattr(self._local, "building", False)

    @contextmanager
    def building(self) -> Iterator[None]:
        self._local.building = True
        try:
            yield
        finally:
            self._local.building = False

    def lagged(self, request: AwsRequest | None) -> bool:
        settings = self._config().consistency
        return (
            settings["enabled"]
            and request is not None
            and request.access_key != settings["exempt_access_key"]
        )

    def applies(self, service: str) -> bool:
        """Whether reads of `service` see the lagged world on this thread now."""
        request = context.current()
        return self.lagged(request) and request.is_read and request.service == service

    def reset(self) -> None:
        with self._lock:
            self._created.clear()
            self._arns.clear()
            self._gone.clear()
            self._tags.clear()
            self._links.clear()

    # -- delays --

    def _delay(self, setting: str, service: str, kind: str, ident: str, purpose: str) -> float:
        config = self._config()
        low, high = config.consistency_range(setting, service, kind)
        return low + (high - low) * draw(config.seed, service, kind, ident, purpose)

    def _visible_at(self, record: Created, tagging: bool = False) -> float:
        root = record.parent if record.parent is not None and record.parent.ident is not None else record
        delay = self._delay("visible_after", root.service, root.kind, root.ident, "visible")
        if tagging:
            low, high = self._config().consistency["visible_after"]["tagging"]
            roll = draw(self._config().seed, root.service, root.kind, root.ident, "tagging")
            delay = max(delay, low + (high - low) * roll)
        return root.at + delay

    def _linger_until(self, key: Key, gone: Gone) -> float:
        return gone.at + self._delay("linger", key[2], key[3], key[4], "linger")

    def delays(self) -> dict:
        """What the model holds now, with each delay (for tests and debugging: not an endpoint)."""
        with self._lock:
            return {
                "created": {"/".join(key[2:]): self._visible_at(r) - r.at for key, r in self._created.items()},
                "gone": {"/".join(key[2:]): self._linger_until(key, g) - g.at for key, g in self._gone.items() if g.at},
            }

    # -- records --

    def begin_create(self, service: str) -> _Frame:
        stack = self._stack()
        outer = next((frame for frame in reversed(stack) if frame.service == service), None)
        frame = _Frame(service, Created(0.0, service, "", None, parent=outer.record if outer else None))
        stack.append(frame)
        return frame

    def end_create(self, frame: _Frame) -> None:
        self._stack().remove(frame)

    def _stack(self) -> list:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def created(self, backend, kind: Kind, objs: list, frame: _Frame) -> None:
        now = time.monotonic()
        scope = _scope(backend)
        with self._lock:
            for index, obj in enumerate(objs):
                ident = kind.ident(obj)
                if index == 0:
                    # The frame's record: what this create's nested creates show with.
                    record = frame.record
                    record.at, record.kind, record.ident = now, kind.name, ident
                else:
                    record = Created(now, kind.service, kind.name, ident, parent=frame.record.parent)
                key = (*scope, kind.service, kind.name, ident)
                self._created[key] = record
                self._gone.pop(key, None)  # made again under the same name
                if kind.arn is not None:
                    self._arns[kind.arn(backend, obj)] = record

    def gone(self, backend, kind: Kind, ident: str, obj, held: bool, tagged) -> None:
        if kind.gone_state is not None:
            kind.gone_state(obj, ident)
        with self._lock:
            key = (*_scope(backend), kind.service, kind.name, ident)
            self._gone[key] = Gone(obj, None if held else time.monotonic(), tagged)

    def removed(self, obj) -> None:
        """lifecycle.py let go of a resource it held after its delete: it lingers from now."""
        with self._lock:
            for gone in self._gone.values():
                if gone.obj is obj and gone.at is None:
                    gone.at = time.monotonic()

    def tag_changed(self, scope: Scope, service: str, kind: str, ident: str, before: dict, tags: dict) -> None:
        now = time.monotonic()
        with self._lock:
            changes = self._tags.setdefault((*scope, service, ident), [])
            for key, value in tags.items():
                if before.get(key) != value:
                    changes.append(TagChange(now, kind, key, value, before.get(key)))

    def iam_linked(self, account: str, profile: str, role: str) -> None:
        with self._lock:
            self._links[(account, profile, role)] = time.monotonic()

    # -- what a reader sees --

    def hidden(self, scope: Scope, kind: Kind, ident: str, now: float) -> bool:
        record = self._created.get((*scope, kind.service, kind.name, ident))
        return record is not None and now < self._visible_at(record)

    def lingering(self, scope: Scope, kind: Kind, live: set, now: float) -> list:
        """Deleted resources of this kind still shown (none whose id is live again)."""
        shown = []
        with self._lock:
            for key, gone in list(self._gone.items()):
                if key[:4] != (*scope, kind.service, kind.name) or gone.at is None:
                    continue
                if now >= self._linger_until(key, gone):
                    del self._gone[key]
                elif key[4] not in live:
                    shown.append(gone.obj)
        return shown

    def visible_tags(self, scope: Scope, service: str, ident: str, tags: dict, now: float) -> dict:
        """`tags` as a reader sees them: each key at its newest change already visible, or as it
        was before its first change if none is."""
        changes = self._tags.get((*scope, service, ident))
        if not changes:
            return tags
        by_key: dict[str, list[TagChange]] = {}
        for change in changes:
            by_key.setdefault(change.key, []).append(change)
        shown = dict(tags)
        pending = False
        for key, key_changes in by_key.items():
            visible = [
                now >= change.at + self._delay(
                    "tags_after", service, change.kind, f"{ident}|{key}={change.value}", "tags"
                )
                for change in key_changes
            ]
            if all(visible):
                continue
            pending = True
            value = key_changes[0].previous
            for change, seen in zip(key_changes, visible):
                if seen:
                    value = change.value
            if value is None:
                shown.pop(key, None)
            else:
                shown[key] = value
        if not pending:
            with self._lock:
                self._tags.pop((*scope, service, ident), None)
        return shown

    def has_tag_changes(self) -> bool:
        return bool(self._tags)

    def overrides(self, backend, kinds: list[Kind]) -> tuple[dict, dict]:
        """The storage attributes of `backend` as readers see them now, and the ids hidden per
        kind: {} when nothing differs from the truth."""
        now = time.monotonic()
        scope = _scope(backend)
        overrides: dict[str, Any] = {}
        hidden_ids: dict[str, set] = {}
        for kind in kinds:
            store = kind.store
            storage = overrides.get(store.attr, getattr(backend, store.attr))
            live = store.objects(storage)
            idents = {kind.ident(obj) for obj in live}
            hidden = {ident for ident in idents if self.hidden(scope, kind, ident, now)}
            extra = self.lingering(scope, kind, idents, now)
            retag = kind.with_tags is not None and self._tags
            if not hidden and not extra and not retag:
                continue

            def transform(obj, kind=kind, hidden=hidden):
                if kind.ident(obj) in hidden:
                    return None
                if kind.with_tags is not None:
                    return kind.with_tags(obj, lambda tags: self.visible_tags(scope, kind.service, kind.ident(obj), tags, now))
                return obj

            view = store.view(storage, transform, extra)
            overrides[store.attr] = view
            overrides.update(store.derived(view))
            hidden_ids[kind.name] = hidden
        return overrides, hidden_ids

    def tagged(self, backend, resource, now: float):
        """A tagging API resource as a reader sees it now, or None while it is hidden."""
        record = self._arns.get(resource.arn)
        if record is not None and now < self._visible_at(record, tagging=True):
            return None
        scope = _scope(backend)
        service, ident = _tag_subject(resource.arn)
        tags = self.visible_tags(scope, service, ident, resource.tags, now)
        return resource if tags is resource.tags else replace(resource, tags=tags)

    def lingering_tagged(self, scope: Scope, now: float) -> list:
        shown = []
        with self._lock:
            for key, gone in list(self._gone.items()):
                if key[:2] == scope and gone.at is not None and gone.tagged is not None:
                    if now < self._linger_until(key, gone):
                        shown.append(gone.tagged)
        return shown

    # -- IAM propagation --

    def iam_usable_at(self, account: str, region: str, profile) -> float:
        """When EC2 and Auto Scaling accept this instance profile: its own delay, each of its
        roles', and the delay since each role was added to it."""
        times = [0.0]
        with self._lock:
            record = self._created.get((account, region, "iam", "instance_profile", profile.name))
            if record is not None:
                times.append(record.at + self._delay("iam_usable_after", "iam", "instance_profile", profile.name, "usable"))
            for role in profile.roles:
                record = self._created.get((account, region, "iam", "role", role.name))
                if record is not None:
                    times.append(record.at + self._delay("iam_usable_after", "iam", "role", role.name, "usable"))
                linked = self._links.get((account, profile.name, role.name))
                if linked is not None:
                    link = f"{profile.name}|{role.name}"
                    times.append(linked + self._delay("iam_usable_after", "iam", "instance_profile", link, "usable"))
        return max(times)

    def refusal(self, request: AwsRequest) -> AwsError | None:
        """AWS's refusal of an instance profile it does not know yet (IAM propagates late)."""
        if not self.lagged(request):
            return None
        check = _IAM_CHECKS.get((request.service, request.operation))
        return check(self, request) if check else None


def _scope(backend) -> Scope:
    return (backend.account_id, backend.region_name)


def _tag_subject(arn: str) -> tuple[str, str]:
    """(service, id) under which a resource's tag changes are recorded, from its ARN."""
    parts = arn.split(":", 5)
    service = parts[2] if len(parts) > 2 else ""
    if service == "ec2":
        return "ec2", arn.rsplit("/", 1)[-1]
    return service, arn


# --- the view a read runs against ----------------------------------------------------------------


class View:
    """A moto backend as readers see it: the storage attributes in `overrides` replaced, every
    other attribute the backend's own, and its methods bound to the view so that what they call
    on `self` sees the same storage."""

    def __init__(self, backend, overrides: dict) -> None:
        object.__setattr__(self, "_plinth_backend", backend)
        object.__setattr__(self, "_plinth_overrides", overrides)

    def __getattr__(self, name: str):
        overrides = object.__getattribute__(self, "_plinth_overrides")
        if name in overrides:
            return overrides[name]
        backend = object.__getattribute__(self, "_plinth_backend")
        value = getattr(backend, name)
        if isinstance(value, types.MethodType) and value.__self__ is backend:
            return types.MethodType(value.__func__, self)
        return value

    def __setattr__(self, name: str, value) -> None:
        setattr(object.__getattribute__(self, "_plinth_backend"), name, value)


def _backend_of(obj):
    return object.__getattribute__(obj, "_plinth_backend") if isinstance(obj, View) else obj


# --- wrapping moto -------------------------------------------------------------------------------


def _wrap(cls: type, name: str, make: Callable[[Callable], Callable]) -> None:
    original = getattr(cls, name)
    setattr(cls, name, make(original))


def _make_create(model: Consistency, kind: Kind):
    def make(original):
        def create(self, *args, **kwargs):
            if isinstance(self, View) or not model.recording():
                return original(self, *args, **kwargs)
            before = {kind.ident(obj) for obj in kind.store.objects(getattr(self, kind.store.attr))}
            frame = model.begin_create(kind.service)
            try:
                result = original(self, *args, **kwargs)
            finally:
                model.end_create(frame)
            new = [obj for obj in kind.store.objects(getattr(self, kind.store.attr)) if kind.ident(obj) not in before]
            if new:
                model.created(self, kind, new, frame)
            return result

        return create

    return make


def _make_delete(model: Consistency, kind: Kind):
    def make(original):
        def delete(self, *args, **kwargs):
            if isinstance(self, View) or not model.recording():
                return original(self, *args, **kwargs)
            before = {kind.ident(obj): obj for obj in kind.store.objects(getattr(self, kind.store.attr))}
            tagged = _tagged_index(self) if kind.arn is not None else {}
            result = original(self, *args, **kwargs)
            after = {kind.ident(obj): obj for obj in kind.store.objects(getattr(self, kind.store.attr))}
            for ident, obj in before.items():
                held = after.get(ident) is obj
                # Gone from moto, or still held (by lifecycle.py) but the object this delete acted on.
                if ident not in after or (held and result is obj):
                    arn = kind.arn(self, obj) if kind.arn is not None else None
                    model.gone(self, kind, ident, obj, held, tagged.get(arn))
            return result

        return delete

    return make


def _tagged_index(backend) -> dict:
    try:
        return {resource.arn: resource for resource in backend.iter_tagged_resources()}
    except Exception:  # a backend without the tagging API's mixin
        return {}


def _make_read(model: Consistency, service: str, kinds: list[Kind]):
    def make(original):
        def read(self, *args, **kwargs):
            if isinstance(self, View) or not model.applies(service):
                return original(self, *args, **kwargs)
            overrides, hidden = model.overrides(self, kinds)
            if not overrides:
                return original(self, *args, **kwargs)
            for kind in kinds:
                if kind.missing is not None and hidden.get(kind.name):
                    error = kind.missing(args, kwargs, hidden[kind.name])
                    if error is not None:
                        raise error
            return original(View(self, overrides), *args, **kwargs)

        return read

    return make


class _Current:
    """The model the wrappers ask: moto is patched once per process, and a later install (a
    second StrictAws in the same process) only points the wrappers at its model."""

    target: Consistency | None = None
    installed = False

    def __getattr__(self, name: str):
        return getattr(type(self).target, name)


_current = _Current()


def install(target: Consistency, lifecycle=None) -> None:
    """Wrap moto's create, delete and read methods of every kind, the tag writers, EC2's tag
    reader and the tagging API."""
    _Current.target = target
    if lifecycle is not None:
        # Resources lifecycle.py holds after their delete (a DB cluster `deleting`) linger
        # from the moment it lets them go.
        lifecycle.on_removed = target.removed
    if _Current.installed:
        return
    _Current.installed = True
    model: Any = _current
    kinds = _kinds()
    names = {kind.label for kind in kinds}
    assert names == set(CONSISTENCY_KINDS), names ^ set(CONSISTENCY_KINDS)
    reads: dict[tuple[type, str], list[Kind]] = {}
    for kind in kinds:
        for method in kind.creates:
            _wrap(kind.backend, method, _make_create(model, kind))
        for method in kind.deletes:
            _wrap(kind.backend, method, _make_delete(model, kind))
        for method in kind.reads:
            reads.setdefault((kind.backend, method), []).append(kind)
    for (backend, method), read_kinds in reads.items():
        _wrap(backend, method, _make_read(model, read_kinds[0].service, read_kinds))
    _install_sns_topic_lookup(model, next(kind for kind in kinds if kind.label == "sns:topic"))
    _install_tag_writers(model)
    _install_ec2_tags(model)
    _install_tagging_api(model)
    _install_iam_links(model)
    _install_backend_building(model)


def _install_backend_building(model) -> None:
    """moto builds a region's EC2 backend on first use, maybe inside an API call, and makes its
    default VPC, subnets and security group with the same create methods: not API creates."""
    from moto.ec2.models import EC2Backend

    original = EC2Backend.__init__

    def __init__(self, *args, **kwargs):
        with model.building():
            original(self, *args, **kwargs)

    EC2Backend.__init__ = __init__


def _kinds() -> list[Kind]:
    from moto.autoscaling.models import AutoScalingBackend
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.ec2.exceptions import EC2ClientError, InvalidLaunchTemplateIdNotFound
    from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.models.internet_gateways import InternetGatewayBackend
    from moto.ec2.models.launch_templates import LaunchTemplateBackend
    from moto.ec2.models.nat_gateways import NatGatewayBackend
    from moto.ec2.models.route_tables import RouteBackend
    from moto.ec2.models.security_groups import SecurityGroupBackend
    from moto.ec2.models.subnets import SubnetBackend
    from moto.ec2.models.vpcs import VPCBackend
    from moto.elbv2.models import ELBv2Backend
    from moto.iam.models import IAMBackend
    from moto.rds.models import RDSBackend
    from moto.secretsmanager.models import SecretsManagerBackend
    from moto.sns.models import SNSBackend

    def ec2_arn(resource_type: str):
        return lambda backend, obj: (
            f"arn:{backend.partition}:ec2:{backend.region_name}:{backend.account_id}:{resource_type}/{obj.id}"
        )

    def nat_missing(args: tuple, kwargs: dict, hidden: set):
        # moto answers unknown ids with an empty list; AWS with NatGatewayNotFound.
        # moto's signature: describe_nat_gateways(filters, nat_gateway_ids)
        ids = kwargs.get("nat_gateway_ids", args[1] if len(args) > 1 else None)
        for nat_id in ids or []:
            if nat_id in hidden:
                return EC2ClientError("NatGatewayNotFound", f"The Nat Gateway {nat_id} was not found")
        return None

    def template_missing(args: tuple, kwargs: dict, hidden: set):
        # By id, moto answers an empty list; AWS InvalidLaunchTemplateId.NotFound. (By name moto
        # already answers InvalidLaunchTemplateName.NotFoundException, as AWS does.)
        # moto's signature: describe_launch_templates(template_names, template_ids, filters)
        ids = kwargs.get("template_ids", args[1] if len(args) > 1 else None)
        for template_id in ids or []:
            if template_id in hidden:
                return InvalidLaunchTemplateIdNotFound(template_id)
        return None

    def restore_allocation(address, ident: str) -> None:
        # moto clears the allocation id of a released address.
        address.allocation_id = ident

    def group_deleting(group, ident: str) -> None:
        group.status = "Delete in progress"

    def group_with_tags(group, visible: Callable[[dict], dict]):
        tags = {tag["Key"]: tag["Value"] for tag in group.tags}
        shown_tags = visible(tags)
        if shown_tags == tags:
            return group
        shown = copy.copy(group)
        by_key = {tag["Key"]: tag for tag in group.tags}
        shown.tags = [
            {**by_key.get(key, {"ResourceId": group.name, "ResourceType": "auto-scaling-group",
                                "PropagateAtLaunch": False}), "Key": key, "Value": value}
            for key, value in shown_tags.items()
        ]
        return shown

    return [
        # EC2 (elastic IPs and launch templates are not in moto's tagging API)
        Kind("ec2", "vpc", VPCBackend, DictStore("vpcs", key=lambda o: o.id), lambda o: o.id,
             ("create_vpc",), ("delete_vpc",), ("describe_vpcs",), ec2_arn("vpc")),
        Kind("ec2", "subnet", SubnetBackend,
             NestedStore("subnets", group=lambda o: o.availability_zone, key=lambda o: o.id), lambda o: o.id,
             ("create_subnet",), ("delete_subnet",), ("describe_subnets",), ec2_arn("subnet")),
        Kind("ec2", "internet_gateway", InternetGatewayBackend, DictStore("internet_gateways", key=lambda o: o.id),
             lambda o: o.id, ("create_internet_gateway",), ("delete_internet_gateway",),
             ("describe_internet_gateways",), ec2_arn("internet-gateway")),
        Kind("ec2", "address", ElasticAddressBackend, ListStore("addresses"), lambda o: o.allocation_id,
             ("allocate_address",), ("release_address",), ("describe_addresses",),
             gone_state=restore_allocation),
        Kind("ec2", "nat_gateway", NatGatewayBackend, DictStore("nat_gateways", key=lambda o: o.id), lambda o: o.id,
             ("create_nat_gateway",), (), ("describe_nat_gateways",), ec2_arn("natgateway"),
             missing=nat_missing),  # a deleted NAT gateway stays in moto, `deleted`: no linger needed
        Kind("ec2", "route_table", RouteBackend, DictStore("route_tables", key=lambda o: o.id), lambda o: o.id,
             ("create_route_table",), ("delete_route_table",), ("describe_route_tables",), ec2_arn("route-table")),
        Kind("ec2", "security_group", SecurityGroupBackend,
             NestedStore("groups", group=lambda o: o.vpc_id, key=lambda o: o.id), lambda o: o.id,
             ("create_security_group",), ("delete_security_group",), ("describe_security_groups",),
             ec2_arn("security-group")),
        Kind("ec2", "launch_template", LaunchTemplateBackend, LaunchTemplateStore(), lambda o: o.id,
             ("create_launch_template",), ("delete_launch_template",),
             ("describe_launch_templates", "describe_launch_template_versions"), missing=template_missing),
        Kind("ec2", "instance", InstanceBackend, ReservationStore(), lambda o: o.id,
             ("run_instances",), (), ("describe_instances", "get_reservations_by_instance_ids",
                                      "describe_instance_status"), ec2_arn("instance")),
        # ELBv2: the load balancer kind first, the listener view works on its result.
        Kind("elasticloadbalancing", "load_balancer", ELBv2Backend, DictStore("load_balancers", key=lambda o: o.arn),
             lambda o: o.arn, ("create_load_balancer",), ("delete_load_balancer",),
             ("describe_load_balancers", "describe_listeners", "describe_target_groups",
              "describe_load_balancer_attributes"), lambda backend, o: o.arn),
        Kind("elasticloadbalancing", "target_group", ELBv2Backend, DictStore("target_groups", key=lambda o: o.arn),
             lambda o: o.arn, ("create_target_group",), ("delete_target_group",),
             ("describe_target_groups", "describe_target_health"),
             lambda backend, o: o.arn),
        Kind("elasticloadbalancing", "listener", ELBv2Backend, ListenerStore(), lambda o: o.arn,
             ("create_listener",), ("delete_listener",), ("describe_listeners",)),
        # Auto Scaling (not in the tagging API: AWS's GetResources does not list groups)
        Kind("autoscaling", "group", AutoScalingBackend, DictStore("autoscaling_groups", key=lambda o: o.name),
             lambda o: o.name, ("create_auto_scaling_group",), ("delete_auto_scaling_group",),
             ("describe_auto_scaling_groups",), gone_state=group_deleting,
             with_tags=group_with_tags),
        Kind("autoscaling", "policy", AutoScalingBackend, DictStore("policies", key=lambda o: o.name),
             lambda o: o.name, ("put_scaling_policy",), ("delete_policy",), ("describe_policies",)),
        # RDS
        Kind("rds", "db_subnet_group", RDSBackend, DictStore("subnet_groups", key=lambda o: o.name),
             lambda o: o.name, ("create_subnet_group",), ("delete_subnet_group",), ("describe_db_subnet_groups",)),
        Kind("rds", "db_cluster_parameter_group", RDSBackend,
             DictStore("db_cluster_parameter_groups", key=lambda o: o.name), lambda o: o.name,
             ("create_db_cluster_parameter_group",), ("delete_db_cluster_parameter_group",),
             ("describe_db_cluster_parameter_groups", "describe_db_cluster_parameters")),
        Kind("rds", "db_cluster", RDSBackend, DictStore("clusters", key=lambda o: o.db_cluster_identifier),
             lambda o: o.db_cluster_identifier, ("create_db_cluster",), ("delete_db_cluster",),
             ("describe_db_clusters",), lambda backend, o: o.arn),
        Kind("rds", "db_instance", RDSBackend, DictStore("databases", key=lambda o: o.db_instance_identifier),
             lambda o: o.db_instance_identifier, ("create_db_instance",), ("delete_db_instance",),
             ("describe_db_instances",), lambda backend, o: o.arn),
        # IAM (global: not in the tagging API)
        Kind("iam", "role", IAMBackend, DictStore("roles", key=lambda o: o.id), lambda o: o.name,
             ("create_role",), ("delete_role",), ("get_role", "get_role_by_arn", "list_roles")),
        Kind("iam", "instance_profile", IAMBackend, DictStore("instance_profiles", key=lambda o: o.name),
             lambda o: o.name, ("create_instance_profile",), ("delete_instance_profile",),
             ("get_instance_profile", "get_instance_profile_by_arn", "get_instance_profiles",
              "get_instance_profiles_for_role")),
        # SNS (get_topic reads the backend registry, not `self`: see _install_sns_topic_lookup)
        Kind("sns", "topic", SNSBackend, DictStore("topics", key=lambda o: o.arn), lambda o: o.arn,
             ("create_topic",), ("delete_topic",), ("list_topics",), lambda backend, o: o.arn),
        Kind("sns", "subscription", SNSBackend, DictStore("subscriptions", key=lambda o: o.arn), lambda o: o.arn,
             ("subscribe",), ("unsubscribe",),
             ("list_subscriptions", "list_subscriptions_by_topic", "get_subscription_attributes")),
        # CloudWatch (its CBOR calls are bridged in cbor.py; the answers come from these reads)
        Kind("monitoring", "alarm", CloudWatchBackend, DictStore("alarms", key=lambda o: o.name), lambda o: o.name,
             ("put_metric_alarm",), ("delete_alarms",),
             ("describe_alarms", "get_alarms_by_action_prefix", "get_alarms_by_alarm_name_prefix",
              "get_alarms_by_alarm_names", "get_alarms_by_state_value"),
             lambda backend, o: f"arn:{backend.partition}:cloudwatch:{backend.region_name}:{backend.account_id}:alarm:{o.name}"),
        # Secrets Manager (a secret deleted with a recovery window stays in moto, as in AWS)
        Kind("secretsmanager", "secret", SecretsManagerBackend, DictStore("secrets", key=lambda o: o.name),
             lambda o: o.name, ("create_secret",), ("delete_secret",),
             ("describe_secret", "get_secret_value", "list_secrets", "batch_get_secret_value"),
             lambda backend, o: o.arn),
    ]


def _install_sns_topic_lookup(model: Consistency, kind: Kind) -> None:
    """SNS's get_topic looks the topic up in moto's registry of backends, not in `self`, so a
    view cannot hide it: decide here (GetTopicAttributes, ListSubscriptionsByTopic, ...)."""
    from moto.sns.exceptions import TopicNotFound
    from moto.sns.models import SNSBackend

    def make(original):
        def get_topic(self, arn):
            if not model.applies("sns"):
                return original(self, arn)
            backend = _backend_of(self)
            now = time.monotonic()
            if model.hidden(_scope(backend), kind, arn, now):
                raise TopicNotFound
            try:
                return original(self, arn)
            except TopicNotFound:
                for topic in model.lingering(_scope(backend), kind, set(), now):
                    if topic.arn == arn:
                        return topic
                raise

        return get_topic

    _wrap(SNSBackend, "get_topic", make)


def _install_tag_writers(model: Consistency) -> None:
    """Record tags added to existing resources by each service's tagging call (not the tags a
    create writes: those come with the resource)."""
    from moto.autoscaling.models import AutoScalingBackend
    from moto.ec2.models.tags import TagBackend
    from moto.elbv2.models import ELBv2Backend
    from moto.rds.models import RDSBackend

    def tagging(operation: str) -> bool:
        request = context.current()
        return model.recording() and request.operation == operation

    def make_ec2(original):
        def create_tags(self, resource_ids, tags):
            if not tagging("CreateTags"):
                return original(self, resource_ids, tags)
            before = {rid: dict(self.tags.get(rid, {})) for rid in resource_ids}
            result = original(self, resource_ids, tags)
            for rid in resource_ids:
                model.tag_changed(_scope(self), "ec2", _EC2_KINDS.get(rid.split("-", 1)[0], ""), rid, before[rid], tags)
            return result

        return create_tags

    def make_elbv2(original):
        def add_tags(self, resource_arns, tags):
            if not tagging("AddTags"):
                return original(self, resource_arns, tags)
            before = {arn: dict(self.tagging_service.get_tag_dict_for_resource(arn)) for arn in resource_arns}
            result = original(self, resource_arns, tags)
            added = {tag["Key"]: tag.get("Value", "") for tag in tags}
            for arn in resource_arns:
                kind = "target_group" if ":targetgroup/" in arn else "load_balancer"
                model.tag_changed(_scope(self), "elasticloadbalancing", kind, arn, before[arn], added)
            return result

        return add_tags

    def make_rds(original):
        def add_tags_to_resource(self, arn, tags):
            if not tagging("AddTagsToResource"):
                return original(self, arn, tags)
            try:
                resource = self._get_resource_for_tagging(arn)
                before = {tag["Key"]: tag["Value"] for tag in resource.get_tags()} if resource else {}
            except Exception:
                before = {}
            result = original(self, arn, tags)
            kind = {"cluster": "db_cluster", "db": "db_instance"}.get(arn.split(":")[5] if arn.count(":") >= 6 else "", "")
            model.tag_changed(_scope(self), "rds", kind, arn, before, {tag["Key"]: tag.get("Value", "") for tag in tags})
            return result

        return add_tags_to_resource

    def make_autoscaling(original):
        def create_or_update_tags(self, tags):
            if not tagging("CreateOrUpdateTags"):
                return original(self, tags)
            before = {
                tag["ResourceId"]: {t["Key"]: t["Value"] for t in self.autoscaling_groups[tag["ResourceId"]].tags}
                for tag in tags
                if tag.get("ResourceId") in self.autoscaling_groups
            }
            result = original(self, tags)
            for name, old in before.items():
                added = {tag["Key"]: tag.get("Value", "") for tag in tags if tag["ResourceId"] == name}
                model.tag_changed(_scope(self), "autoscaling", "group", name, old, added)
            return result

        return create_or_update_tags

    _wrap(TagBackend, "create_tags", make_ec2)
    _wrap(ELBv2Backend, "add_tags", make_elbv2)
    _wrap(RDSBackend, "add_tags_to_resource", make_rds)
    _wrap(AutoScalingBackend, "create_or_update_tags", make_autoscaling)


# EC2 id prefix -> kind, so that `tags_after` can be set per kind.
_EC2_KINDS = {
    "vpc": "vpc", "subnet": "subnet", "igw": "internet_gateway", "eipalloc": "address", "nat": "nat_gateway",
    "rtb": "route_table", "sg": "security_group", "lt": "launch_template", "i": "instance",
}


def _install_ec2_tags(model: Consistency) -> None:
    """EC2 describes and `tag:` filters read a resource's tags through get_tags (fixes.py reads
    them by id): a reader sees the tags whose addition is visible."""
    from moto.ec2.models.core import TaggedEC2Resource

    original = TaggedEC2Resource.get_tags

    def get_tags(self) -> list[dict[str, str]]:
        tags = original(self)
        if not model.has_tag_changes() or not model.applies("ec2"):
            return tags
        backend = self.ec2_backend
        current = {tag["key"]: tag["value"] for tag in tags}
        shown = model.visible_tags(_scope(backend), "ec2", self.id, current, time.monotonic())
        if shown is current:
            return tags
        resource_type = tags[0]["resource_type"] if tags else ""
        return [
            {"resource_id": self.id, "key": key, "value": value, "resource_type": resource_type}
            for key, value in shown.items()
        ]

    get_tags._plinth_fixed = getattr(original, "_plinth_fixed", False)  # type: ignore[attr-defined]
    TaggedEC2Resource.get_tags = get_tags


def _install_tagging_api(model: Consistency) -> None:
    """GetResources: hidden resources and tags left out, lingering ones added, then moto's own
    filters applied (the same as moto's generator, on what a reader sees)."""
    from moto.core.resource_tagging import iter_taggable_backends, make_tag_matcher, match_resource_type
    from moto.resourcegroupstaggingapi.models import ResourceGroupsTaggingAPIBackend

    original = ResourceGroupsTaggingAPIBackend._get_resources_generator

    def _get_resources_generator(
        self, tag_filters=None, resource_type_filters=None, resource_arn_list=None
    ) -> Iterator:
        if not model.applies("tagging"):
            yield from original(self, tag_filters, resource_type_filters, resource_arn_list)
            return
        matcher = make_tag_matcher(tag_filters)
        now = time.monotonic()

        def wanted(resource) -> bool:
            return (
                (bool(resource.tags) or bool(resource.extra.get("include_untagged")))
                and match_resource_type(resource.resource_type, resource_type_filters)
                and matcher(resource.tags)
                and (not resource_arn_list or resource.arn in resource_arn_list)
            )

        for backend in iter_taggable_backends(self.account_id, self.region_name):
            for resource in backend.iter_tagged_resources():
                shown = model.tagged(backend, resource, now)
                if shown is not None and wanted(shown):
                    yield shown
        for resource in model.lingering_tagged((self.account_id, self.region_name), now):
            if wanted(resource):
                yield resource

    ResourceGroupsTaggingAPIBackend._get_resources_generator = _get_resources_generator


def _install_iam_links(model: Consistency) -> None:
    """A role added to an instance profile propagates to EC2 late, like a new profile."""
    from moto.iam.models import IAMBackend

    def make(original):
        def add_role_to_instance_profile(self, profile_name, role_name):
            result = original(self, profile_name, role_name)
            if model.recording():
                model.iam_linked(self.account_id, profile_name, role_name)
            return result

        return add_role_to_instance_profile

    _wrap(IAMBackend, "add_role_to_instance_profile", make)


# --- IAM propagation: the refusals -----------------------------------------------------------------


def _profile_error(request: AwsRequest, prefix: str, by: str, value: str) -> AwsError:
    what = "name" if by == "Name" else "arn"
    label = "name" if by == "Name" else "ARN"
    return AwsError(
        "ValidationError" if request.service == "autoscaling" else "InvalidParameterValue",
        f"{prefix}Value ({value}) for parameter iamInstanceProfile.{what} is invalid. "
        f"Invalid IAM Instance Profile {label}",
    )


def _unusable_profile(model: Consistency, request: AwsRequest, specification: dict) -> tuple[str, str] | None:
    """(Name|Arn, value) of the instance profile `specification` names, if EC2 cannot use it yet."""
    from moto.backends import get_backend
    from moto.utilities.utils import get_partition

    by = "Name" if specification.get("Name") else "Arn" if specification.get("Arn") else None
    if by is None:
        return None
    value = specification[by]
    partition = get_partition(request.region)
    iam = get_backend("iam")[request.account_id][partition]
    profile = next(
        (p for p in iam.instance_profiles.values() if (p.name if by == "Name" else p.arn) == value), None
    )
    if profile is None:
        return None  # unknown: moto answers as it does
    if time.monotonic() < model.iam_usable_at(request.account_id, iam.region_name, profile):
        return by, value
    return None


def _template_profile(request: AwsRequest, prefix: str) -> dict:
    """The IamInstanceProfile of the launch template version the parameters under `prefix` name."""
    from moto.backends import get_backend

    params = request.params
    template_id = params.get(f"{prefix}LaunchTemplateId")
    name = params.get(f"{prefix}LaunchTemplateName")
    if not template_id and not name:
        return {}
    ec2 = get_backend("ec2")[request.account_id][request.region]
    if not template_id:
        template_id = ec2.launch_template_name_to_ids.get(name)
    template = ec2.launch_templates.get(template_id or "")
    if template is None:
        return {}
    try:
        version = template.get_version(params.get(f"{prefix}Version") or "$Default")
    except Exception:
        return {}
    return version.data.get("IamInstanceProfile") or {}


def _run_instances(model: Consistency, request: AwsRequest) -> AwsError | None:
    specification = {
        "Name": request.params.get("IamInstanceProfile.Name"),
        "Arn": request.params.get("IamInstanceProfile.Arn"),
    }
    if not specification["Name"] and not specification["Arn"]:
        specification = _template_profile(request, "LaunchTemplate.")
    unusable = _unusable_profile(model, request, specification)
    return _profile_error(request, "", *unusable) if unusable else None


def _auto_scaling_group(model: Consistency, request: AwsRequest) -> AwsError | None:
    for prefix in ("LaunchTemplate.", "MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification."):
        unusable = _unusable_profile(model, request, _template_profile(request, prefix))
        if unusable:
            return _profile_error(request, "You must use a valid fully-formed launch template. ", *unusable)
    return None


_IAM_CHECKS: dict[tuple[str, str], Callable[[Consistency, AwsRequest], AwsError | None]] = {
    ("ec2", "RunInstances"): _run_instances,
    ("autoscaling", "CreateAutoScalingGroup"): _auto_scaling_group,
    ("autoscaling", "UpdateAutoScalingGroup"): _auto_scaling_group,
}
