"""DynamoDB capacity units as DynamoDB bills them, measured from what moto stores.

moto answers ReturnConsumedCapacity with fixed numbers. With MOTO_DYNAMODB_METER
set to a file path, this meters every write and read by the items' sizes instead,
per table, and rewrites that file (JSON) after each request:

  {"<table>": {"write_units": {"table": W, "<index>": W, ...},
               "read_units": {"table": R, "<index>": R},
               "writes": N, "reads": N}}

The rules (DynamoDB developer guide, "capacity unit consumption"):
- a write costs ceil(size / 1 KB) units, size the larger of the item before and
  after; in a transaction, twice that; a condition check in one, 2 units per KB of
  the item checked;
- each global secondary index the write touches costs the same for its entry
  (projected attributes, the keys, and 100 bytes of entry overhead): an entry whose
  index key moved is a delete and a put; one whose projected attributes did not
  change costs nothing;
- a strongly consistent read costs ceil(size / 4 KB); an eventually consistent one
  half (a Query sums the items it returns; index queries are eventually consistent).

Not metered: writes refused by their condition (DynamoDB bills those too), scans
(the service never scans), and the 1 KB rounding of BatchGetItem per item.
"""

import copy
import json
import math
import os
import threading

INDEX_ENTRY_OVERHEAD = 100
PATH = os.environ.get("MOTO_DYNAMODB_METER")
TOTALS = {}
LOCK = threading.Lock()
# moto's transact_write_items reads and writes each item through get_item,
# put_item, update_item and delete_item; inside a transaction those are the
# transaction's, metered once by it.
IN_TRANSACTION = threading.local()


def _in_transaction():
    return getattr(IN_TRANSACTION, "active", False)


def _table_totals(name):
    return TOTALS.setdefault(name, {"write_units": {"table": 0.0}, "read_units": {"table": 0.0},
                                    "writes": 0, "reads": 0})


def _dump():
    if PATH:
        with open(PATH + ".tmp", "w") as out:
            json.dump(TOTALS, out)
        os.replace(PATH + ".tmp", PATH)


def _write_units(size):
    return max(1, math.ceil(size / 1024))


def _size(item):
    return item.size() if item is not None else 0


def _entry(index, item):
    """The item's entry in the index, or None if it lacks the index's keys."""
    if item is None:
        return None
    if any(key["AttributeName"] not in item.attrs for key in index.schema):
        return None
    return index.project(copy.deepcopy(item))


def _index_key(index, entry):
    return tuple(entry.attrs[key["AttributeName"]] for key in index.schema)


def charge_write(table, before, after, factor):
    with LOCK:
        totals = _table_totals(table.name)
        totals["writes"] += 1
        units = totals["write_units"]
        units["table"] += factor * _write_units(max(_size(before), _size(after)))
        for index in table.global_indexes:
            old, new = _entry(index, before), _entry(index, after)
            if old is None and new is None:
                continue
            if old is not None and new is not None and _index_key(index, old) == _index_key(index, new):
                if old.to_json() == new.to_json():
                    continue
                cost = _write_units(max(_size(old), _size(new)) + INDEX_ENTRY_OVERHEAD)
            else:
                cost = sum(_write_units(_size(e) + INDEX_ENTRY_OVERHEAD) for e in (old, new) if e is not None)
            units[index.name] = units.get(index.name, 0.0) + factor * cost
        _dump()


def charge_read(table_name, index_name, size, consistent):
    with LOCK:
        totals = _table_totals(table_name)
        totals["reads"] += 1
        units = math.ceil(size / 4096) if size else 1
        key = index_name or "table"
        totals["read_units"][key] = totals["read_units"].get(key, 0.0) + (units if consistent else units / 2)
        _dump()


def _key_of(table, attrs):
    names = [table.hash_key_attr, table.range_key_attr]
    return {name: attrs[name] for name in names if name and name in attrs}


def _snapshot(backend, table_name, key):
    table = backend.get_table(table_name)
    hash_key, range_key = backend.get_keys_value(table, key)
    return copy.deepcopy(table.get_item(hash_key, range_key))


def install(backend_class):
    """Meters put_item, update_item, delete_item, transact_write_items, get_item and
    query of `backend_class` (moto's DynamoDBBackend) when MOTO_DYNAMODB_METER is set."""
    if not PATH:
        return
    put_item, update_item = backend_class.put_item, backend_class.update_item
    delete_item, transact = backend_class.delete_item, backend_class.transact_write_items
    get_item, query = backend_class.get_item, backend_class.query

    def single(method, key_from):
        def metered(self, table_name, *args, **kwargs):
            if _in_transaction():
                return method(self, table_name, *args, **kwargs)
            table = self.get_table(table_name)
            key = key_from(table, args, kwargs)
            before = _snapshot(self, table_name, key)
            result = method(self, table_name, *args, **kwargs)
            charge_write(table, before, _snapshot(self, table_name, key), 1)
            return result
        return metered

    backend_class.put_item = single(
        put_item, lambda table, args, kwargs: _key_of(table, args[0] if args else kwargs["item_attrs"]))
    backend_class.update_item = single(
        update_item, lambda table, args, kwargs: args[0] if args else kwargs["key"])
    backend_class.delete_item = single(
        delete_item, lambda table, args, kwargs: args[0] if args else kwargs["key"])

    def metered_transact(self, transact_items):
        touched = []
        for entry in transact_items:
            kind, operation = next(iter(entry.items()))
            table = self.get_table(operation["TableName"])
            key = operation.get("Key") or _key_of(table, operation.get("Item", {}))
            touched.append((kind, table, key, _snapshot(self, table.name, key)))
        IN_TRANSACTION.active = True
        try:
            result = transact(self, transact_items)
        finally:
            IN_TRANSACTION.active = False
        for kind, table, key, before in touched:
            if kind == "ConditionCheck":
                charge_write(table, before, before, 2)
            else:
                charge_write(table, before, _snapshot(self, table.name, key), 2)
        return result

    backend_class.transact_write_items = metered_transact

    def metered_get(self, table_name, keys, *args, **kwargs):
        item = get_item(self, table_name, keys, *args, **kwargs)
        if not _in_transaction():
            # The store's reads are all strongly consistent.
            charge_read(table_name, None, _size(item), True)
        return item

    backend_class.get_item = metered_get

    def metered_query(self, table_name, *args, **kwargs):
        result = query(self, table_name, *args, **kwargs)
        items = result[0]
        index_name = kwargs.get("index_name")
        consistent = bool(kwargs.get("consistent_read")) and not index_name
        charge_read(table_name, index_name, sum(_size(i) for i in items), consistent)
        return result

    backend_class.query = metered_query
