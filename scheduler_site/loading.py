"""Model instances from database rows without `Model.__init__`: the same instances, cheaper.

Django (5.2) builds each row's instance through `Model.__init__` (one `setattr` a field, the
pre_init/post_init signals) and, for a row loaded in part (`only()`, `defer()`), first spreads
its values over every concrete field with a list membership test per field. For the widest
rows read on the hot path (a worker claiming 500 runs with their endpoints: 32 + 62 fields)
that was half of the claim's CPU (profiled). A row's values go straight into the instance's
`__dict__` instead — exactly what `__init__` ends with for positional values: each concrete
field's attname set, deferred ones left out (Django's `DeferredAttribute` loads those on
access). Only where no pre_init/post_init receiver listens for the model: one that did would
expect `__init__`.
"""

from __future__ import annotations

from django.db.models import signals
from django.db.models.base import ModelState


class FastFromDb:
    """A mixin for models: put it before `models.Model` in the bases."""

    @classmethod
    def from_db(cls, db, field_names, values):
        if signals.pre_init.has_listeners(cls) or signals.post_init.has_listeners(cls):
            return super().from_db(db, field_names, values)
        instance = cls.__new__(cls)
        state = instance._state = ModelState()
        state.adding = False
        state.db = db
        instance.__dict__.update(zip(field_names, values, strict=True))
        return instance
