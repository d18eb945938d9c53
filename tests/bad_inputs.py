"""Models the loader must refuse, shared by ``test_io`` (exact messages) and ``test_schema``.

Each case is a small YAML file, the error line expected after ``FILE:`` and what the JSON Schema
says about the same document:

* ``"rejects"``: the schema expresses the rule and rejects the document too;
* ``"beyond"``: a rule the schema cannot express (``rule`` names it), so the schema accepts the
  document and only the loader refuses it;
* ``"yaml"``: refused while reading the YAML text, before there is any data for a schema to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["rejects", "beyond", "yaml"]

#: Rules of DESIGN.md that JSON Schema cannot express; every one has a case below.
BEYOND_SCHEMA = {
    "unique names": "step and compensation names are unique across the saga",
    "one pivot": "at most one step is the pivot",
    "pivot outside parallel": "the pivot is not inside a parallel group",
    "services resolve": "every declared service is called by some step",
    "p99 above median": "a lognormal's p99 is above its median",
    "high at least low": "a uniform's high is at least its low",
    "outage order": "an outage starts no later than it ends",
    "some message arrives": "a broker that loses every message also gives up redelivering",
    "resources resolve": "reads, writes and isolation name declared resources",
    "one write mode": "every write of a resource, by steps and compensations, uses one mode",
    "read-only writes nothing": "a step with effects: false has no writes",
}


@dataclass(frozen=True)
class BadInput:
    id: str
    source: str | bytes
    #: The full error text after ``FILE:``, i.e. ``LINE: PATH: MESSAGE``.
    error: str
    schema: Verdict
    rule: str = ""


STEP_KEYS = (
    "compensate_on_failure, compensation, effects, failure, idempotent, kind, latency, "
    "max_visits, name, reads, reject, rejects_late, retry, service, timeout, writes"
)
TOP_KEYS = (
    "arrivals, broker, compensation_order, coordination, coordinator, description, instances, "
    "isolation, resources, saga, services, steps"
)
DISTS = "'constant', 'uniform', 'exponential', 'normal', 'lognormal', 'empirical'"
BOMB = "saga: s\nsteps: [{name: a}]\n" + "".join(
    f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]\n" if level else "l0: &l0 [x]\n"
    for level in range(9)
)

BAD_INPUTS = [
    BadInput(
        "unknown step key",
        "saga: s\nsteps:\n  - name: a\n    failur: 0.1\n",
        f"4: steps[0]: unknown key 'failur' (expected one of: {STEP_KEYS}; did you mean"
        f" 'failure'?)",
        "rejects",
    ),
    BadInput(
        "unknown top-level key",
        "saga: s\nstep:\n  - name: a\n",
        f"2: unknown key 'step' (expected one of: {TOP_KEYS}; did you mean 'steps'?)",
        "rejects",
    ),
    BadInput(
        "unknown key without a close match",
        "saga: s\nsteps:\n  - name: a\n    retry: {attempts: 2, color: red}\n",
        "4: steps[0].retry: unknown key 'color' (expected one of: attempts, backoff, delay, "
        "jitter, max_delay, multiplier)",
        "rejects",
    ),
    BadInput(
        "missing steps",
        "saga: s\ndescription: nothing to do\n",
        "1: steps: expected a list of steps, got nothing (the key is missing)",
        "rejects",
    ),
    BadInput(
        "missing saga name",
        "steps: [{name: a}]\n",
        "1: saga: expected a saga name, got nothing (the key is missing)",
        "rejects",
    ),
    BadInput(
        "missing step name",
        "saga: s\nsteps:\n  - service: orders\n    failure: 0.1\n",
        "3: steps[0].name: expected an identifier, got nothing (the key is missing)",
        "rejects",
    ),
    BadInput(
        "no steps at all",
        "saga: s\nsteps: []\n",
        "2: steps: expected at least one step, got none",
        "rejects",
    ),
    BadInput(
        "step given as a bare name",
        "saga: s\nsteps:\n  - validate_order\n",
        "3: steps[0]: expected a step (a mapping with a 'name' key) or another entry (parallel,"
        " choice, fail, succeed, goto, map, saga), got 'validate_order'",
        "rejects",
    ),
    BadInput(
        "negative attempts",
        "saga: s\nsteps:\n  - name: a\n    retry:\n      attempts: -1\n",
        "5: steps[0].retry.attempts: expected a positive integer or 'unbounded', got -1",
        "rejects",
    ),
    BadInput(
        "fractional attempts",
        "saga: s\nsteps:\n  - name: a\n    retry: {attempts: 2.5}\n",
        "4: steps[0].retry.attempts: expected a positive integer or 'unbounded', got 2.5",
        "rejects",
    ),
    BadInput(
        "probability above one",
        "saga: s\nsteps:\n  - name: a\n    failure: 1.5\n",
        "4: steps[0].failure: expected a probability in [0, 1], got 1.5",
        "rejects",
    ),
    BadInput(
        "probability as text",
        "saga: s\nsteps:\n  - name: a\n    reject: abc\n",
        "4: steps[0].reject: expected a number, got 'abc'",
        "rejects",
    ),
    BadInput(
        "probability as a boolean",
        "saga: s\nsteps:\n  - name: a\n    reject: true\n",
        "4: steps[0].reject: expected a number, got true",
        "rejects",
    ),
    BadInput(
        "yes is not a boolean",
        "saga: s\nsteps:\n  - name: a\n    effects: yes\n",
        "4: steps[0].effects: expected true or false, got 'yes'",
        "rejects",
    ),
    BadInput(
        "on is not a boolean",
        "saga: s\nsteps:\n  - name: a\n    retry: {attempts: 3, jitter: on}\n",
        "4: steps[0].retry.jitter: expected true or false, got 'on'",
        "rejects",
    ),
    BadInput(
        "duration without a unit",
        "saga: s\nsteps:\n  - name: a\n    timeout: 15\n",
        "4: steps[0].timeout: expected a duration with a unit (ms, s, min), got 15",
        "rejects",
    ),
    BadInput(
        "duration with an unknown unit",
        "saga: s\nsteps:\n  - name: a\n    timeout: 5 sec\n",
        "4: steps[0].timeout: expected a duration with a unit (ms, s, min), got '5 sec'",
        "rejects",
    ),
    BadInput(
        "negative duration",
        "saga: s\nsteps:\n  - name: a\n    retry: {delay: -5ms}\n",
        "4: steps[0].retry.delay: expected a non-negative duration, got '-5ms'",
        "rejects",
    ),
    BadInput(
        "unknown kind",
        "saga: s\nsteps:\n  - name: a\n    kind: pivott\n",
        "4: steps[0].kind: expected 'pivot' or 'retriable', got 'pivott' (did you mean 'pivot'?)",
        "rejects",
    ),
    BadInput(
        "unknown coordination",
        "saga: s\ncoordination: orchestra\nsteps: [{name: a}]\n",
        "2: coordination: expected 'orchestration' or 'choreography', got 'orchestra'"
        " (did you mean 'orchestration'?)",
        "rejects",
    ),
    BadInput(
        "unknown backoff",
        "saga: s\nsteps:\n  - name: a\n    retry: {backoff: linear}\n",
        "4: steps[0].retry.backoff: expected 'fixed' or 'exponential', got 'linear'",
        "rejects",
    ),
    BadInput(
        "multiplier below one",
        "saga: s\nsteps:\n  - name: a\n    retry: {backoff: exponential, multiplier: 0.5}\n",
        "4: steps[0].retry.multiplier: expected a number >= 1, got 0.5",
        "rejects",
    ),
    BadInput(
        "unknown distribution",
        "saga: s\nsteps:\n  - name: a\n    latency: {dist: gaussian, mean: 5ms}\n",
        f"4: steps[0].latency.dist: expected one of {DISTS}, got 'gaussian'",
        "rejects",
    ),
    BadInput(
        "latency as a bare duration",
        "saga: s\nsteps:\n  - name: a\n    latency: 15ms\n",
        "4: steps[0].latency: expected a distribution such as {dist: constant, value: 5ms},"
        " got '15ms'",
        "rejects",
    ),
    BadInput(
        "distribution parameter missing",
        "saga: s\nsteps:\n  - name: a\n    latency:\n      dist: exponential\n",
        "4: steps[0].latency.mean: expected a duration, got nothing (the key is missing)",
        "rejects",
    ),
    BadInput(
        "parameter of another distribution",
        "saga: s\nsteps:\n  - name: a\n    latency:\n      dist: exponential\n      median: 5ms\n",
        "6: steps[0].latency: unknown key 'median' (expected one of: dist, mean;"
        " did you mean 'mean'?)",
        "rejects",
    ),
    BadInput(
        "exponential mean of zero",
        "saga: s\nsteps:\n  - name: a\n    latency: {dist: exponential, mean: 0ms}\n",
        "4: steps[0].latency.mean: expected a positive duration, got '0ms'",
        "rejects",
    ),
    BadInput(
        "lognormal with p99 and sigma",
        "saga: s\nsteps:\n  - name: a\n    latency: {dist: lognormal, median: 15ms, p99: 80ms,"
        " sigma: 0.5}\n",
        "4: steps[0].latency: expected either 'p99' or 'sigma', got both",
        "rejects",
    ),
    BadInput(
        "negative sigma",
        "saga: s\nsteps:\n  - name: a\n    latency: {dist: lognormal, median: 15ms, sigma: -0.5}\n",
        "4: steps[0].latency.sigma: expected a non-negative number, got -0.5",
        "rejects",
    ),
    BadInput(
        "lognormal p99 below the median",
        "saga: s\nsteps:\n  - name: a\n    latency: {dist: lognormal, median: 15ms, p99: 10ms}\n",
        "4: steps[0].latency.p99: expected a duration above the median (15ms), got '10ms'",
        "beyond",
        "p99 above median",
    ),
    BadInput(
        "uniform high below low",
        "saga: s\nsteps:\n  - name: a\n    latency: {dist: uniform, low: 5ms, high: 1ms}\n",
        "4: steps[0].latency.high: expected a duration of at least low (5ms), got '1ms'",
        "beyond",
        "high at least low",
    ),
    BadInput(
        "empty empirical samples",
        "saga: s\nsteps:\n  - name: a\n    latency: {dist: empirical, samples: []}\n",
        "4: steps[0].latency.samples: expected a non-empty list of durations, got an empty list",
        "rejects",
    ),
    BadInput(
        "empirical sample without a unit",
        "saga: s\nsteps:\n  - name: a\n    latency:\n      dist: empirical\n"
        "      samples:\n        - 1ms\n        - 3\n",
        "8: steps[0].latency.samples[1]: expected a duration with a unit (ms, s, min), got 3",
        "rejects",
    ),
    BadInput(
        "name that is not an identifier",
        "saga: s\nsteps:\n  - name: reserve-stock\n",
        "3: steps[0].name: expected an identifier, got 'reserve-stock'",
        "rejects",
    ),
    BadInput(
        "python keyword as a name",
        "saga: s\nsteps:\n  - name: a\n    compensation: class\n",
        "4: steps[0].compensation.name: expected an identifier, got 'class'",
        "rejects",
    ),
    BadInput(
        "reserved name",
        "saga: s\nsteps:\n  - name: send\n",
        "3: steps[0].name: expected a name other than the reserved ['committed', 'compensated',"
        " 'configuration', 'leaked', 'model', 'name', 'send', 'states', 'stuck'], got 'send'",
        "rejects",
    ),
    BadInput(
        "compensation of the wrong type",
        "saga: s\nsteps:\n  - name: a\n    compensation: 5\n",
        "4: steps[0].compensation: expected a compensation name or a mapping with a 'name' key,"
        " got 5",
        "rejects",
    ),
    BadInput(
        "kind on a compensation",
        "saga: s\nsteps:\n  - name: a\n    compensation:\n      name: undo_a\n      kind: pivot\n",
        "6: steps[0].compensation: unknown key 'kind' (expected one of: failure, idempotent,"
        " latency, name, reject, rejects_late, retry, service, timeout, writes)",
        "rejects",
    ),
    BadInput(
        "duplicate step names",
        "saga: s\nsteps:\n  - name: a\n  - name: b\n  - name: a\n",
        "5: steps[2].name: expected a unique name, got 'a' again (first used at steps[0].name)",
        "beyond",
        "unique names",
    ),
    BadInput(
        "compensation named like a step",
        "saga: s\nsteps:\n  - name: a\n    compensation: b\n  - name: b\n",
        "5: steps[1].name: expected a unique name, got 'b' again"
        " (first used at steps[0].compensation.name)",
        "beyond",
        "unique names",
    ),
    BadInput(
        "two pivots",
        "saga: s\nsteps:\n  - {name: a, kind: pivot}\n  - {name: b, kind: pivot}\n",
        "4: steps[1].kind: expected at most one pivot, got a second one (first at steps[0])",
        "beyond",
        "one pivot",
    ),
    BadInput(
        "pivot inside a parallel group",
        "saga: s\nsteps:\n  - parallel:\n      - [{name: a, kind: pivot}]\n      - [{name: b}]\n",
        "4: steps[0].parallel[0][0].kind: expected the pivot outside parallel groups,"
        " got it inside one",
        "beyond",
        "pivot outside parallel",
    ),
    BadInput(
        "parallel branch that is not a list",
        "saga: s\nsteps:\n  - parallel:\n      - {name: a}\n      - [{name: b}]\n",
        "4: steps[0].parallel[0]: expected a list of steps, got a mapping",
        "rejects",
    ),
    BadInput(
        "nested parallel group",
        "saga: s\nsteps:\n  - parallel:\n      - [{parallel: [[{name: a}]]}]\n      - [{name:"
        " b}]\n",
        "4: steps[0].parallel[0][0]: expected a parallel group only outside parallel groups and"
        " maps (they do not nest), got one inside a parallel group",
        "rejects",
    ),
    BadInput(
        "parallel group with a name",
        "saga: s\nsteps:\n  - name: g\n    parallel:\n      - [{name: a}]\n",
        "3: steps[0]: unknown key 'name' (expected one of: parallel)",
        "rejects",
    ),
    BadInput(
        "empty parallel branch",
        "saga: s\nsteps:\n  - parallel:\n      - [{name: a}]\n      - []\n",
        "5: steps[0].parallel[1]: expected a branch with at least one step, got an empty one",
        "rejects",
    ),
    BadInput(
        "service nobody calls",
        "saga: s\nservices:\n  payment: {capacity: 2}\nsteps:\n  - {name: a, service: payments}\n",
        "3: services.payment: expected a service that a step calls (payments), got 'payment'",
        "beyond",
        "services resolve",
    ),
    BadInput(
        "capacity of zero",
        "saga: s\nservices:\n  a: {capacity: 0}\nsteps: [{name: a}]\n",
        "3: services.a.capacity: expected a positive integer, got 0",
        "rejects",
    ),
    BadInput(
        "outage ending before it starts",
        "saga: s\nservices:\n  a:\n    outages:\n      - {start: 90s, end: 60s}\nsteps: [{name:"
        " a}]\n",
        "5: services.a.outages[0]: expected 0 <= start <= end, got start 90000.0 ms and end"
        " 60000.0 ms",
        "beyond",
        "outage order",
    ),
    BadInput(
        "arrival rate as a word",
        "saga: s\nsteps: [{name: a}]\narrivals: {rate: fast}\n",
        "3: arrivals.rate: expected a rate such as 50/s, 3000/min or a number per second,"
        " got 'fast'",
        "rejects",
    ),
    BadInput(
        "arrival rate of zero",
        "saga: s\nsteps: [{name: a}]\narrivals: {rate: 0/s}\n",
        "3: arrivals.rate: expected a positive rate, got 0.0/s",
        "rejects",
    ),
    BadInput(
        "document that is a list",
        "- name: a\n- name: b\n",
        "1: expected a mapping with keys 'saga' and 'steps', got a list",
        "rejects",
    ),
    BadInput(
        "duplicate key",
        "saga: s\nsteps:\n  - name: a\n    failure: 0.1\n    failure: 0.2\n",
        "5: steps[0]: expected each key once, got 'failure' again (first on line 4)",
        "yaml",
    ),
    BadInput(
        "syntax error",
        "saga: s\nsteps:\n  - name: a\n   failure: 0.1\n",
        "4: expected valid YAML, got a syntax error at column 4: while parsing a block"
        " collection, expected <block end>, but found '<block mapping start>'",
        "yaml",
    ),
    BadInput(
        "python object tag",
        "saga: !!python/object/apply:os.system ['echo hacked']\nsteps: [{name: a}]\n",
        "1: saga: expected plain YAML data, got the tag '!!python/object/apply:os.system'",
        "yaml",
    ),
    BadInput(
        "broker loss above 1",
        "saga: s\nsteps: [{name: a}]\nbroker:\n  loss: 1.5\n",
        "4: broker.loss: expected a probability in [0, 1], got 1.5",
        "rejects",
    ),
    BadInput(
        "unknown broker key",
        "saga: s\nsteps: [{name: a}]\nbroker: {los: 0.1}\n",
        "3: broker: unknown key 'los' (expected one of: duplicate, latency, loss, redelivery,"
        " reorder; did you mean 'loss'?)",
        "rejects",
    ),
    BadInput(
        "no redelivery attempts",
        "saga: s\nsteps: [{name: a}]\nbroker:\n  redelivery: {attempts: 0}\n",
        "4: broker.redelivery.attempts: expected a positive integer or 'unbounded', got 0",
        "rejects",
    ),
    BadInput(
        "every message lost for ever",
        "saga: s\nsteps: [{name: a}]\nbroker:\n  loss: 1\n  redelivery: {attempts: unbounded}\n",
        "4: broker.loss: expected loss below 1 with unbounded redelivery (no message would ever"
        " arrive), got 1",
        "beyond",
        "some message arrives",
    ),
    BadInput(
        "too many aliases",
        "saga: s\nsteps: [{name: a}]\nx: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n",
        "4: expected at most 100 aliases, got more",
        "yaml",
    ),
    BadInput(
        "alias expansion bomb",
        BOMB,
        "1: expected at most 1000000 nodes once aliases are expanded, got 102908583",
        "yaml",
    ),
    BadInput(
        "recursive alias",
        "saga: s\nsteps: &loop [{name: a}, *loop]\n",
        "2: expected aliases to complete nodes, got an alias inside its own anchor",
        "yaml",
    ),
    BadInput(
        "bytes that are not UTF-8",
        b"saga: s\nsteps:\n  - name: caf\xe9\n",
        "3: expected UTF-8 text, got the byte 0xe9",
        "yaml",
    ),
    BadInput(
        "a write to an unknown resource",
        "saga: s\nresources: {seats: {initial: 10}}\nsteps:\n  - name: book\n"
        "    writes: {seat: set}\n",
        "5: steps[0].writes.seat: expected a resource declared under resources (seats), got"
        " 'seat' (did you mean 'seats'?)",
        "beyond",
        "resources resolve",
    ),
    BadInput(
        "a read of an unknown resource, none declared",
        "saga: s\nsteps:\n  - name: count\n    effects: false\n    reads: [seats]\n",
        "5: steps[0].reads[0]: expected a resource declared under resources (none are declared),"
        " got 'seats'",
        "beyond",
        "resources resolve",
    ),
    BadInput(
        "isolation of an unknown resource",
        "saga: s\nresources: {seats: {}}\nisolation: {stock: version}\nsteps:\n  - name: a\n",
        "3: isolation.stock: expected a resource declared under resources (seats), got 'stock'",
        "beyond",
        "resources resolve",
    ),
    BadInput(
        "add on a resource a compensation sets",
        "saga: s\nresources: {seats: {initial: 10}}\nsteps:\n  - name: book\n"
        "    writes: {seats: add}\n    compensation:\n      name: release\n"
        "      writes: {seats: set}\n",
        "8: steps[0].compensation.writes.seats: expected add, as book writes seats with add"
        " (one write mode per resource), got set",
        "beyond",
        "one write mode",
    ),
    BadInput(
        "set and add on one resource",
        "saga: s\nresources: {stock: {}}\nsteps:\n  - {name: a, writes: {stock: add}}\n"
        "  - {name: b, writes: {stock: set}}\n",
        "5: steps[1].writes.stock: expected add, as a writes stock with add (one write mode per"
        " resource), got set",
        "beyond",
        "one write mode",
    ),
    BadInput(
        "a read-only step that writes",
        "saga: s\nresources: {seats: {}}\nsteps:\n"
        "  - {name: a, effects: false, writes: {seats: add}}\n",
        "4: steps[0].writes: expected no writes on a step with effects: false (a write is an"
        " effect), got seats",
        "beyond",
        "read-only writes nothing",
    ),
    BadInput(
        "a negative crash rate",
        "saga: s\ncoordinator: {crash: -0.01, restart: 5s}\nsteps:\n  - name: a\n",
        "2: coordinator.crash: expected a probability in [0, 1], got -0.01",
        "rejects",
    ),
    BadInput(
        "an unknown recovery",
        "saga: s\ncoordinator: {recovery: forwards}\nsteps:\n  - name: a\n",
        "2: coordinator.recovery: expected 'forward' or 'backward', got 'forwards' (did you mean"
        " 'forward'?)",
        "rejects",
    ),
    BadInput(
        "an unknown isolation",
        "saga: s\nresources: {seats: {isolation: locking}}\nsteps:\n  - name: a\n",
        "2: resources.seats.isolation: expected one of 'none', 'reread', 'version',"
        " 'semantic_lock', got 'locking'",
        "rejects",
    ),
    BadInput(
        "zero instances",
        "saga: s\ninstances: 0\nsteps:\n  - name: a\n",
        "2: instances: expected a positive integer, got 0",
        "rejects",
    ),
]

#: A model that uses every key of the format and every distribution: the bad inputs' opposite.
GOOD_MODEL = """\
saga: order_fulfillment
description: Validate, recommend, reserve, charge, ship.
coordination: orchestration
compensation_order: reverse
services:
  payments: {capacity: 20, outages: [{start: 60s, end: 90s}]}
  shipping: {}
steps:
  - name: validate_order
    service: orders
    effects: false
    latency: {dist: lognormal, median: 15ms, p99: 80ms}
    reject: 0.02
  - name: recommend_upsell
    service: recommender
    compensation: cancel_recommendation_tracking
    latency: {dist: uniform, low: 5ms, high: 40ms}
    failure: 0.05
    timeout: 300ms
    retry:
      attempts: 3
      backoff: exponential
      delay: 50ms
      max_delay: 400ms
      multiplier: 3
      jitter: true
  - name: reserve_inventory
    service: inventory
    latency: {dist: normal, mean: 20ms, sd: 5ms}
    idempotent: true
    compensation:
      name: release_inventory
      service: inventory_admin
      latency: {dist: empirical, samples: [4ms, 6ms, 11ms]}
      failure: 0.01
      reject: 0.001
      timeout: 1s
      retry: {attempts: unbounded, delay: 100ms}
      idempotent: true
      rejects_late: true
  - parallel:
      - [{name: fraud_check, service: risk, effects: false, reject: 0.01}]
      - - name: hold_loyalty_points
          service: loyalty
          compensation: restore_points
          latency: {dist: lognormal, median: 8ms, sigma: 0.4}
          rejects_late: true
  - name: process_payment
    service: payments
    kind: pivot
    latency: {dist: constant, value: 35ms}
    reject: 0.05
  - name: trigger_delivery
    service: shipping
    kind: retriable
    latency: {dist: exponential, mean: 2s}
    retry: {attempts: unbounded, delay: 1s}
arrivals: {rate: 50/s}
broker:
  latency: {dist: uniform, low: 1ms, high: 4ms}
  loss: 0.001
  duplicate: 0.01
  reorder: 0.05
  redelivery: {attempts: 3, delay: 500ms}
"""
