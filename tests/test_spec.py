"""Tests of sparseforge.spec: the typed, frozen, validated hardware spec, its derived
values and digest, ``--set`` overrides, and loading presets and TOML files."""

from __future__ import annotations

import dataclasses
import math
from importlib import resources
from pathlib import Path

import pytest

from sparseforge.spec import (HardwareSpec, MoeSpec, SpecError, SpgemmSpec, TrainSpec, list_presets, load_spec,
                              preset_path, spec_bounds)
from sparseforge.spec.base import Bound, Section, Text, field_types, show

DATA = Path(__file__).parent / "data" / "spec"
PRESETS = ("default", "dense-16x16", "sf-32x32", "tiny")
ALLOWED = ("act_width, clock_mhz, clock_source, cols, dataflow, description, double_buffer, dram_bandwidth_gbps, "
           "dram_latency_ns, e_dram_pj_per_byte, e_mac_pj, e_sram_pj_per_byte, fold_overlap, input_buffer_kib, "
           "m, max_k, n, name, output_buffer_kib, part, rows, weight_buffer_kib, weight_width; "
           "sections moe.*, spgemm.*, train.*")
#: fields that name the spec or its target, not the hardware: outside the digest
NOT_HARDWARE = ("name", "description", "part", "clock_source")
# every hardware field but dataflow, which has a single allowed value
HARDWARE_FIELDS = [f.name for f in dataclasses.fields(HardwareSpec)
                   if f.name not in NOT_HARDWARE + ("dataflow",)]


def _error(**changes) -> str:
    with pytest.raises(SpecError) as info:
        HardwareSpec(**changes)
    return str(info.value)


# ------------------------------------------------------------------ defaults
def test_defaults_are_valid_and_match_the_documented_machine():
    """HardwareSpec() builds without error and is the documented 16x16 2:4 int8 array."""
    s = HardwareSpec()
    assert (s.rows, s.cols, s.n, s.m, s.act_width, s.weight_width) == (16, 16, 2, 4, 8, 8)
    assert s.dataflow == "weight-stationary"
    assert s.double_buffer is True
    assert not s.dense
    assert s.multipliers == 16 * 16 * 2


def test_spec_error_is_a_value_error():
    """SpecError subclasses ValueError so generic callers can catch it."""
    assert issubclass(SpecError, ValueError)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("field", ["rows", "cols", "n", "m", "max_k", "weight_buffer_kib",
                                   "input_buffer_kib", "output_buffer_kib"])
@pytest.mark.parametrize("value", [0, -1])
def test_positive_int_fields_reject_zero_and_negative(field, value):
    """Every size field must be >= 1; the message names the field, the value and the range."""
    assert _error(**{field: value}) == \
        f"{field} = {value} is not allowed: must be {HardwareSpec.BOUNDS[field].allowed()}"
    assert HardwareSpec.BOUNDS[field].low == 1


def test_n_greater_than_m_is_rejected():
    """n > m is not an N:M pattern: the message names both values."""
    assert _error(n=5, m=4) == "n = 5 is not allowed with m = 4: N:M sparsity needs 1 <= n <= m"


def test_n_equal_m_is_a_dense_array():
    """n == m is allowed and makes a dense array."""
    assert HardwareSpec(n=4, m=4).dense


def test_group_size_above_64_is_rejected():
    """m is capped at 64."""
    assert _error(n=2, m=65) == "m = 65 is not allowed: must be 1..64"
    assert HardwareSpec(n=2, m=64).m == 64


@pytest.mark.parametrize("field", ["act_width", "weight_width"])
@pytest.mark.parametrize("value", [1, 33, 0, -8])
def test_operand_widths_out_of_range(field, value):
    """Operand widths must be 2..32 bits."""
    assert _error(**{field: value}) == f"{field} = {value} is not allowed: must be 2..32 bits"


@pytest.mark.parametrize("field", ["act_width", "weight_width"])
@pytest.mark.parametrize("value", [2, 32])
def test_operand_width_bounds_are_inclusive(field, value):
    """2 and 32 bits are both allowed (max_k lowered so the accumulator stays <= 64 bits)."""
    assert getattr(HardwareSpec(**{field: value}, max_k=16), field) == value


def test_unknown_dataflow_is_rejected():
    """weight-stationary, output-stationary and switchable exist; the message lists the choices."""
    assert _error(dataflow="row-stationary") == \
        "dataflow = 'row-stationary' is not allowed: choose one of weight-stationary, output-stationary, switchable"


@pytest.mark.parametrize("field, allowed", [("clock_mhz", "1..5000 MHz"),
                                            ("dram_bandwidth_gbps", "0.001..1000000000 GB/s")])
@pytest.mark.parametrize("value", [0.0, -1.5, 0])
def test_clock_and_bandwidth_must_be_positive(field, allowed, value):
    """clock_mhz and dram_bandwidth_gbps must be > 0 (within their documented range)."""
    assert _error(**{field: value}) == f"{field} = {value} is not allowed: must be {allowed}"


@pytest.mark.parametrize("field", ["clock_mhz", "dram_bandwidth_gbps", "dram_latency_ns", "e_mac_pj"])
def test_nan_is_rejected(field):
    """NaN fails every ordered comparison, so it is rejected like an out-of-range value."""
    msg = _error(**{field: float("nan")})
    assert msg.startswith(f"{field} = nan is not allowed: must be ")


@pytest.mark.parametrize("field", ["dram_latency_ns", "e_mac_pj", "e_sram_pj_per_byte", "e_dram_pj_per_byte"])
def test_latency_and_energies_must_be_non_negative(field):
    """Latency and per-event energies may be 0 but not negative."""
    unit = "ns" if field == "dram_latency_ns" else "pJ"
    assert _error(**{field: -0.5}) == f"{field} = -0.5 is not allowed: must be 0..1000000 {unit}"
    assert getattr(HardwareSpec(**{field: 0.0}), field) == 0.0


def test_max_k_too_large_for_a_64_bit_accumulator():
    """A max_k whose accumulator would exceed 64 bits is rejected; 2^48 (exactly 64 bits
    with 8-bit operands) is the largest allowed."""
    assert HardwareSpec(max_k=2**48).acc_width == 64
    assert _error(max_k=2**48 + 1) == (
        f"max_k = {2**48 + 1} is not allowed with 8-bit activations and 8-bit weights: "
        "the accumulator would need 65 > 64 bits")
    assert _error(max_k=2**20, act_width=32, weight_width=16) == (
        "max_k = 1048576 is not allowed with 32-bit activations and 16-bit weights: "
        "the accumulator would need 68 > 64 bits")


@pytest.mark.parametrize("field, value, message", [
    ("rows", True, "rows = True is not allowed: must be an integer"),
    ("max_k", False, "max_k = False is not allowed: must be an integer"),
    ("rows", "16", "rows = '16' is not allowed: must be of type int"),
    ("cols", 16.0, "cols = 16.0 is not allowed: must be of type int"),
    ("n", None, "n = None is not allowed: must be of type int"),
    ("clock_mhz", "200", "clock_mhz = '200' is not allowed: must be of type float"),
    ("clock_mhz", True, "clock_mhz = True is not allowed: must be of type float"),
    ("double_buffer", 1, "double_buffer = 1 is not allowed: must be of type bool"),
    ("double_buffer", "yes", "double_buffer = 'yes' is not allowed: must be of type bool"),
    ("name", 5, "name = 5 is not allowed: must be of type str"),
    ("dataflow", None, "dataflow = None is not allowed: must be of type str"),
])
def test_wrong_types_are_rejected(field, value, message):
    """Each field is checked against its annotated type; bool is not accepted as an int
    (nor as a float)."""
    assert _error(**{field: value}) == message


def test_int_is_accepted_for_float_fields():
    """An int where a float is expected is fine (TOML ``clock_mhz = 200``)."""
    assert HardwareSpec(clock_mhz=250).cycle_ns == 4.0


# ------------------------------------------------------------------ derived values
@pytest.mark.parametrize("a, w, max_k", [(8, 8, 1), (8, 8, 2), (8, 8, 3), (8, 8, 16384), (8, 8, 16385),
                                         (4, 6, 1000), (16, 16, 2**20), (2, 2, 2**40 + 1)])
def test_acc_width(a, w, max_k):
    """acc_width = act_width + weight_width + ceil(log2 max_k) (exact integer ceil-log2)."""
    s = HardwareSpec(act_width=a, weight_width=w, max_k=max_k)
    assert s.acc_width == a + w + (max_k - 1).bit_length()


def test_acc_width_exact_for_huge_max_k():
    """acc_width stays exact for max_k just above a large power of two (needs 50 bits of count)."""
    s = HardwareSpec(act_width=2, weight_width=2, max_k=2**49 + 1)
    assert s.acc_width == 2 + 2 + 50


@pytest.mark.parametrize("m, idx", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4), (16, 4), (64, 6)])
def test_idx_width(m, idx):
    """idx_width = ceil(log2 m), at least 1."""
    assert HardwareSpec(n=1, m=m).idx_width == idx


@pytest.mark.parametrize("rows, cols", [(1, 1), (4, 4), (16, 16), (8, 32), (32, 3)])
def test_array_latency(rows, cols):
    """array_latency = rows + cols + pe_latency, with pe_latency = 4."""
    s = HardwareSpec(rows=rows, cols=cols)
    assert s.pe_latency == 4
    assert s.array_latency == rows + cols + 4


def test_clock_derived_values():
    """cycle_ns, DRAM bytes per cycle and DRAM latency in (rounded-up) cycles."""
    s = HardwareSpec(clock_mhz=200.0, dram_bandwidth_gbps=19.2, dram_latency_ns=101.0)
    assert s.cycle_ns == 5.0
    assert s.dram_bytes_per_cycle == pytest.approx(96.0)
    assert s.dram_latency_cycles == 21
    assert HardwareSpec(dram_latency_ns=0.0).dram_latency_cycles == 0


def test_record_contains_spec_digest_and_derived():
    """record() stores the full spec, its digest and the derived values."""
    s = HardwareSpec(rows=8, cols=4)
    r = s.record()
    assert r["spec"] == s.to_dict()
    assert r["digest"] == s.digest
    assert r["derived"] == {"idx_width": 2, "acc_width": 30, "multipliers": 64, "pe_latency": 4,
                            "array_latency": 16}


# ------------------------------------------------------------------ digest
def test_digest_is_stable_16_hex_digits():
    """The digest is 16 lowercase hex digits and the same for equal specs."""
    d = HardwareSpec().digest
    assert len(d) == 16 and all(c in "0123456789abcdef" for c in d)
    assert HardwareSpec().digest == d
    assert HardwareSpec(**HardwareSpec().to_dict()).digest == d


def test_digest_ignores_name_and_description():
    """Names and descriptions do not change the hardware, so not the digest; nor do the
    target part and the clock's reason (the Verilog and every simulated number are the
    same), so the synthesis cache and calibration records, keyed by digest, stay valid."""
    base = HardwareSpec()
    assert base.replace(name="other", description="something else").digest == base.digest
    assert base.replace(part="XCVU9P", clock_source="a reason").digest == base.digest
    assert set(base.hardware_dict()) == {f.name for f in dataclasses.fields(HardwareSpec)} - set(NOT_HARDWARE)


def test_default_preset_has_the_digest_of_the_default_spec():
    """The default preset describes HardwareSpec()'s hardware exactly: same digest, other
    name (and a named target: HardwareSpec() defaults to the LFE5U-85F, the measured part)."""
    spec = load_spec("default")
    assert spec.name == "default"
    assert spec.digest == HardwareSpec().digest


@pytest.mark.parametrize("field", HARDWARE_FIELDS)
def test_digest_changes_with_every_hardware_field(field):
    """Changing any hardware field changes the digest."""
    base = HardwareSpec()
    value = getattr(base, field)
    new = {bool: lambda v: not v, int: lambda v: v // 2 if field == "max_k" else v + 1,
           float: lambda v: v + 1.0}.get(type(value))
    if isinstance(value, Section):
        # a section: change each of its integer fields in turn; every change moves the digest
        ints = [f for f, v in value.to_dict().items() if type(v) is int]
        assert ints
        for sub in ints:
            v = getattr(value, sub)
            bumped = v * 2 if sub in ("table_entries", "banks", "cache_line_bytes") else v + 2
            bumped = 1024 if sub == "cache_bytes" else bumped      # 0 (no cache) -> 4 sets of 4 x 64 B
            changed = base.replace(**{field: dataclasses.replace(value, **{sub: bumped})})
            assert changed.digest != base.digest, sub
        return
    if field == "n":
        changed = base.replace(n=1)
    elif field == "m":
        changed = base.replace(m=8)
    elif field == "fold_overlap":
        changed = base.replace(fold_overlap="none")
    else:
        changed = base.replace(**{field: new(value)})
    assert changed.digest != base.digest


# ------------------------------------------------------------------ frozen
def test_spec_is_frozen():
    """Assigning to a field raises; replace() makes a new validated spec instead."""
    s = HardwareSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.rows = 32  # type: ignore[misc]
    assert s.replace(rows=32).rows == 32 and s.rows == 16
    with pytest.raises(SpecError):
        s.replace(rows=0)


def test_spec_is_hashable_and_comparable():
    """Equal specs compare equal and hash equal (frozen dataclass)."""
    assert HardwareSpec(rows=8) == HardwareSpec(rows=8)
    assert hash(HardwareSpec(rows=8)) == hash(HardwareSpec(rows=8))


# ------------------------------------------------------------------ with_overrides
def test_with_overrides_parses_each_type():
    """--set values are parsed by field type: int (any base), float, bool words, str."""
    s = HardwareSpec().with_overrides(["rows=0x20", "cols = 8", "clock_mhz=250.5", "double_buffer=off",
                                       "name=mine", "dram_latency_ns=0"])
    assert (s.rows, s.cols, s.clock_mhz, s.double_buffer, s.name, s.dram_latency_ns) == \
        (32, 8, 250.5, False, "mine", 0.0)
    assert isinstance(s.dram_latency_ns, float)


@pytest.mark.parametrize("word, value", [("1", True), ("true", True), ("YES", True), ("On", True),
                                         ("0", False), ("false", False), ("no", False), ("OFF", False)])
def test_with_overrides_bool_words(word, value):
    """Booleans accept 1/true/yes/on and 0/false/no/off, case-insensitively."""
    assert HardwareSpec().with_overrides([f"double_buffer={word}"]).double_buffer is value


def test_with_overrides_later_wins_and_original_unchanged():
    """Repeated keys: the last one wins; the original spec is untouched."""
    base = HardwareSpec()
    s = base.with_overrides(["rows=8", "rows=4"])
    assert s.rows == 4 and base.rows == 16


def test_with_overrides_unknown_key():
    """An unknown key names itself and lists the allowed fields."""
    with pytest.raises(SpecError) as info:
        HardwareSpec().with_overrides(["bogus=1"])
    assert str(info.value) == f"unknown field 'bogus' in --set: allowed fields are {ALLOWED}"


def test_with_overrides_missing_equals():
    """An item without '=' is rejected with a hint."""
    with pytest.raises(SpecError) as info:
        HardwareSpec().with_overrides(["rows"])
    assert str(info.value) == "--set 'rows' is not allowed: write key=value"


@pytest.mark.parametrize("item, message", [
    ("rows=abc", "--set rows='abc' is not allowed: rows must be of type int"),
    ("rows=1.5", "--set rows='1.5' is not allowed: rows must be of type int"),
    ("rows=", "--set rows='' is not allowed: rows must be of type int"),
    ("clock_mhz=fast", "--set clock_mhz='fast' is not allowed: clock_mhz must be of type float"),
    ("double_buffer=maybe", "--set double_buffer='maybe' is not allowed: double_buffer must be of type bool"),
])
def test_with_overrides_bad_values(item, message):
    """A value that does not parse as the field's type is rejected, naming key and value."""
    with pytest.raises(SpecError) as info:
        HardwareSpec().with_overrides([item])
    assert str(info.value) == message


def test_with_overrides_validates_the_result():
    """Parsed values still go through validation (rows=0, n > m)."""
    with pytest.raises(SpecError, match=r"^rows = 0 is not allowed: must be 1\.\.512 PEs$"):
        HardwareSpec().with_overrides(["rows=0"])
    with pytest.raises(SpecError, match=r"^n = 5 is not allowed with m = 4"):
        HardwareSpec().with_overrides(["n=5"])


# ------------------------------------------------------------------ load_spec
def test_list_presets_matches_the_shipped_files():
    """list_presets() names exactly the .toml files shipped in sparseforge/spec/presets, each with
    a non-empty description."""
    shipped = sorted(p.name[:-5] for p in resources.files("sparseforge.spec.presets").iterdir()
                     if p.name.endswith(".toml"))
    presets = list_presets()
    assert list(presets) == shipped
    assert set(PRESETS) <= set(presets)
    assert all(desc for desc in presets.values())


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_loads(name):
    """Every shipped preset is a valid spec named after its file, with its description."""
    s = load_spec(name)
    assert s.name == name
    assert s.description == list_presets()[name]
    assert preset_path(name).is_file()


def test_preset_shapes():
    """The presets describe the machines their descriptions promise."""
    tiny, dense, big = load_spec("tiny"), load_spec("dense-16x16"), load_spec("sf-32x32")
    assert (tiny.rows, tiny.cols, tiny.n, tiny.m) == (4, 4, 2, 4)
    assert dense.dense and dense.multipliers == 1024
    assert (big.rows, big.cols, big.multipliers) == (32, 32, 2048)


def test_load_spec_default_and_none():
    """No --hw (None) means the default preset; an empty or blank one is a mistake."""
    assert load_spec() == load_spec("default") == load_spec(None)
    for hw in ("", "  "):
        with pytest.raises(SpecError, match=r"^--hw '\s*' is not allowed: give a preset name"):
            load_spec(hw)


def test_load_spec_with_overrides():
    """Overrides apply on top of the preset."""
    s = load_spec("tiny", ["rows=8", "clock_mhz=100"])
    assert (s.rows, s.cols, s.clock_mhz) == (8, 4, 100.0)
    assert s.name.startswith("tiny-")           # marked as overridden (mark_overridden)


def test_load_spec_toml_file():
    """A TOML path loads; the name defaults to the file's stem; unset fields keep defaults."""
    s = load_spec(str(DATA / "small.toml"))
    assert s.name == "small"
    assert (s.rows, s.cols, s.clock_mhz, s.double_buffer, s.max_k) == (8, 4, 250.0, False, 8192)
    assert s.dram_bandwidth_gbps == HardwareSpec().dram_bandwidth_gbps


def test_load_spec_toml_file_name_field_wins(tmp_path):
    """A name written in the TOML file is kept; a copy of a preset has the preset's digest."""
    p = tmp_path / "copy.toml"
    p.write_text(preset_path("tiny").read_text() + '\nname = "my-tiny"\n')
    s = load_spec(str(p))
    assert s.name == "my-tiny"
    assert s.digest == load_spec("tiny").digest


def test_load_spec_unknown_preset_lists_presets():
    """An unknown preset name lists the known presets."""
    with pytest.raises(SpecError) as info:
        load_spec("nosuch")
    assert str(info.value) == ("--hw 'nosuch' is not a known preset: choose one of "
                               f"{', '.join(list_presets())} or give a .toml file")


def test_load_spec_missing_file(tmp_path):
    """A path (anything with a suffix or a slash) that is not a file is reported."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(SpecError) as info:
        load_spec(str(missing))
    assert str(info.value) == f"--hw '{missing}': no such file"
    with pytest.raises(SpecError, match=r"^--hw 'x\.toml': no such file$"):
        load_spec("x.toml")


def test_load_spec_malformed_toml():
    """Malformed TOML is one line naming the file."""
    path = DATA / "malformed.toml"
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    msg = str(info.value)
    assert msg.startswith(f"{path} is not valid TOML: ")
    assert "\n" not in msg


def test_load_spec_unknown_key_in_toml():
    """A key that is not a field names the key and the file and lists the allowed fields."""
    path = DATA / "unknown_key.toml"
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    assert str(info.value) == f"unknown field 'lanes' in {path}: allowed fields are {ALLOWED}"


def test_load_spec_bad_value_in_toml():
    """A TOML value of the wrong type is a SpecError naming field and value."""
    with pytest.raises(SpecError) as info:
        load_spec(str(DATA / "bad_value.toml"))
    assert str(info.value) == "rows = 'sixteen' is not allowed: must be of type int"


def test_load_spec_toml_table_is_an_unknown_field(tmp_path):
    """A TOML table is not a field either."""
    p = tmp_path / "t.toml"
    p.write_text("rows = 8\n[array]\ncols = 4\n")
    with pytest.raises(SpecError, match=r"^unknown field 'array' in "):
        load_spec(str(p))


def test_energy_defaults_follow_horowitz():
    """The default energies are the documented 45 nm figures."""
    s = HardwareSpec()
    assert (s.e_mac_pj, s.e_sram_pj_per_byte, s.e_dram_pj_per_byte) == (0.3, 1.25, 160.0)
    assert math.isclose(s.e_dram_pj_per_byte, 640 / 4)


@pytest.mark.parametrize("field", ["clock_mhz", "dram_latency_ns"])
def test_infinite_values_are_rejected(field):
    """A non-finite clock or latency is a SpecError naming the field, not a crash later."""
    with pytest.raises(SpecError, match=rf"^{field} = inf is not allowed"):
        HardwareSpec(**{field: float("inf")})


# ------------------------------------------------------------------ bounds
SECTIONS = {"": HardwareSpec, "spgemm.": SpgemmSpec, "moe.": MoeSpec, "train.": TrainSpec}


def _build(dotted: str, value):
    """A default spec with one field (``rows`` or ``spgemm.pes``) set, through the typed path."""
    head, dot, sub = dotted.partition(".")
    if not dot:
        return HardwareSpec(**{head: value})
    section = {"spgemm": SpgemmSpec, "moe": MoeSpec, "train": TrainSpec}[head]
    return HardwareSpec(**{head: section(**{sub: value})})


def test_every_field_but_booleans_has_a_bound():
    """Each spec class bounds every field that is not a bool or a section, so a new field
    cannot slip in unbounded (the bad-input tests are generated from these bounds)."""
    for prefix, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            typ = type(getattr(cls(), f.name))
            if typ is bool or issubclass(typ, Section):
                assert f.name not in cls.BOUNDS
            else:
                assert f.name in cls.BOUNDS, prefix + f.name
                assert isinstance(cls.BOUNDS[f.name], Text if typ is str else Bound), prefix + f.name
    assert set(spec_bounds()) == {p + k for p, cls in SECTIONS.items() for k in cls.BOUNDS}


@pytest.mark.parametrize("dotted", [k for k, b in spec_bounds().items() if isinstance(b, Bound)])
def test_numeric_bounds_are_inclusive_and_enforced(dotted):
    """Both ends of every numeric bound are accepted (when the cross-field rules allow) and
    one step beyond either end is refused with the field, the value and the range."""
    b = spec_bounds()[dotted]
    head, _, sub = dotted.partition(".")
    cls = {"spgemm": SpgemmSpec, "moe": MoeSpec, "train": TrainSpec}[head] if sub else HardwareSpec
    is_int = field_types(cls)[sub or head] is int
    lows = [b.low - 1] if is_int else [b.low - 1, b.low / 2 if b.low > 0 else -1e-9]
    highs = [b.high + 1] if is_int else [b.high * 1.5, 1e308]
    for v in lows + highs + [float("nan")] * (not is_int):
        with pytest.raises(SpecError) as info:
            _build(dotted, v)
        msg = str(info.value)
        assert msg.startswith(f"{dotted} = "), msg
        assert "\n" not in msg
        if not (isinstance(v, float) and math.isnan(v)):
            assert msg.endswith(f"is not allowed: must be {b.allowed()}"), msg
    # the ends themselves, where the other fields' defaults permit them
    for v in (b.low, b.high):
        try:
            s = _build(dotted, v)
        except SpecError as exc:
            assert not str(exc).startswith(f"{dotted} = {v} is not allowed: must be {b.allowed()}")
        else:
            head, _, sub = dotted.partition(".")
            assert (getattr(getattr(s, head), sub) if sub else getattr(s, head)) == v


@pytest.mark.parametrize("value, shown", [
    (10 ** 400, "<a 1329-bit integer>"), (2 ** 100, "<a 101-bit integer>"), (10 ** 12, "1000000000000"),
    ("x" * 100, "'" + "x" * 56 + "..."), ("a\nb", "'a\\nb'"), (1e308, "1e+308"),
])
def test_show_keeps_messages_short_and_on_one_line(value, shown):
    """Values in messages: huge integers by bit length (Python cannot print 4300+ digits),
    long texts cut, control characters escaped."""
    assert show(value) == shown


@pytest.mark.parametrize("dotted, value, message", [
    ("clock_mhz", 1e308, "clock_mhz = 1e+308 is not allowed: must be 1..5000 MHz"),
    ("dram_bandwidth_gbps", 5e-324, "dram_bandwidth_gbps = 5e-324 is not allowed: must be 0.001..1000000000 GB/s"),
    ("dram_latency_ns", 1e308, "dram_latency_ns = 1e+308 is not allowed: must be 0..1000000 ns"),
    ("e_mac_pj", 1e308, "e_mac_pj = 1e+308 is not allowed: must be 0..1000000 pJ"),
    ("clock_mhz", 10 ** 400, "clock_mhz = <a 1329-bit integer> is not allowed: must be 1..5000 MHz"),
    ("rows", 100000, "rows = 100000 is not allowed: must be 1..512 PEs"),
    ("spgemm.pes", 10 ** 12, "spgemm.pes = 1000000000000 is not allowed: must be 1..65536 PEs"),
    ("moe.queue_depth", 10 ** 8, "moe.queue_depth = 100000000 is not allowed: must be 1..65536 tokens"),
    ("name", "", "name = '' is not allowed: must be 1..512 characters without control characters"),
    ("description", "two\nlines", "description = 'two\\nlines' is not allowed: must be 0..8192 characters "
                                  "without control characters"),
])
def test_the_issue_s_extreme_values_are_refused(dotted, value, message):
    """The values of issue 8 that crashed or produced Infinity are refused by the spec."""
    with pytest.raises(SpecError) as info:
        _build(dotted, value)
    assert str(info.value) == message


@pytest.mark.parametrize("assignment, message", [
    ("clock_mhz=1e400", "clock_mhz = inf is not allowed: must be a finite number"),
    ("clock_mhz=nan", "clock_mhz = nan is not allowed: must be a finite number"),
    ("rows=" + "9" * 5000, "--set rows='" + "9" * 56 + "... is not allowed: rows must be a number of at most 4000 "
                           "characters"),
    ("spgemm.pes=1e3", "--set spgemm.pes='1e3' is not allowed: spgemm.pes must be of type int"),
    ("name=a\tb", "name = 'a\\tb' is not allowed: must be 1..512 characters without control characters"),
])
def test_set_values_out_of_bounds(assignment, message):
    """--set values are parsed, then bounded like any other source."""
    with pytest.raises(SpecError) as info:
        HardwareSpec().with_overrides([assignment])
    assert str(info.value) == message


def test_every_preset_is_inside_the_bounds():
    """The presets sit inside every bound (a bound that refused a shipped machine would be
    too tight)."""
    for name in list_presets():
        s = load_spec(name)
        for dotted, b in spec_bounds().items():
            head, _, sub = dotted.partition(".")
            assert b.ok(getattr(getattr(s, head), sub) if sub else getattr(s, head)), (name, dotted)


def test_hash_table_larger_than_its_scratchpad_is_refused():
    """table_entries x entry bytes must fit scratchpad_kib: 8192 8-byte tokens fill 64 KiB
    exactly; one power of two more does not fit; wider keys need more bytes per entry."""
    assert SpgemmSpec(table_entries=8192, scratchpad_kib=64).entry_bytes == 8
    with pytest.raises(SpecError) as info:
        SpgemmSpec(table_entries=16384, scratchpad_kib=64)
    assert str(info.value) == (
        "spgemm.table_entries = 16384 is not allowed: a table of 16384 entries of 8 bytes needs 131072 bytes, "
        "more than spgemm.scratchpad_kib = 64 KiB (65536 bytes) that holds it: lower table_entries or raise "
        "scratchpad_kib")
    with pytest.raises(SpecError, match=r"entries of 16 bytes needs 131072 bytes"):
        SpgemmSpec(table_entries=8192, key_width=64, value_width=64, scratchpad_kib=64)
    assert SpgemmSpec(table_entries=8192, key_width=64, value_width=64, scratchpad_kib=128).entry_bytes == 16
    with pytest.raises(SpecError, match=r"^spgemm.table_entries = 8192 is not allowed: a table"):
        HardwareSpec().with_overrides(["spgemm.scratchpad_kib=32", "spgemm.table_entries=8192"])


def test_docs_list_every_bound():
    """docs/spec.md's bounds table is the code's, row for row (field, range, reason)."""
    text = (Path(__file__).parent.parent / "docs" / "spec.md").read_text()
    for dotted, b in spec_bounds().items():
        allowed = b.allowed()
        allowed = allowed[len("must be "):] if allowed.startswith("must be ") else allowed
        assert f"| `{dotted}` | {allowed} | {b.why} |" in text, dotted


# ------------------------------------------------------------------ malformed spec files
@pytest.mark.parametrize("content, message", [
    (b"rows = 8\n\xff\xfe\x00garbage", "is not UTF-8 text (byte 9 is 0xff): a TOML spec file is UTF-8"),
    ("description = 'caf\u00e9'\n".encode("latin-1"), "is not UTF-8 text (byte 18 is 0xe9): a TOML spec file is UTF-8"),
    (b"a = " + b"[" * 5000 + b"]" * 5000, "is not allowed: its tables or arrays are nested too deeply for a spec "
                                          "(a spec has one level of sections)"),
    (b"rows = " + b"9" * 5000, "is not valid TOML: Exceeds the limit (4300 digits) for integer string conversion"),
    (b"rows = 8\nrows = 9\n", "is not valid TOML: Cannot overwrite a value (at line 2, column 9)"),
])
def test_malformed_spec_files_are_one_line_naming_the_file(tmp_path, content, message):
    """Binary, Latin-1, deeply nested and oversized-number TOML: one line naming the file."""
    p = tmp_path / "bad.toml"
    p.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_spec(str(p))
    msg = str(info.value)
    assert "\n" not in msg and str(p) in msg
    assert message in msg


def test_spec_file_that_is_a_folder_or_too_big(tmp_path):
    """A folder is called a folder (not 'no such file'); a file over 1 MiB is refused before
    it is read; a FIFO is not a regular file (reading it could block forever)."""
    import os

    from sparseforge.spec.hardware import MAX_SPEC_FILE_BYTES

    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(SpecError, match=r"is a folder, not a TOML file"):
        load_spec(str(folder))
    with pytest.raises(SpecError, match=r"is a folder, not a TOML file"):
        load_spec(str(tmp_path) + "/")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * MAX_SPEC_FILE_BYTES + "\n")
    with pytest.raises(SpecError, match=rf"is {MAX_SPEC_FILE_BYTES + 3} bytes, which is not allowed: a spec file "
                                        rf"is at most {MAX_SPEC_FILE_BYTES} bytes$"):
        load_spec(str(big))
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match=r"is not a regular file"):
        load_spec(str(fifo))
    with pytest.raises(SpecError, match=r"cannot be read: "):
        load_spec(str(big) + "/x.toml")          # a component of the path is a file
    with pytest.raises(SpecError, match=r"cannot be read: "):
        load_spec("/" + "x" * 5000 + ".toml")     # longer than the system allows


def test_spec_file_out_of_bounds_names_the_field(tmp_path):
    """A TOML value out of bounds (an integer too large for a float conversion, too) is the
    field's one-line error."""
    p = tmp_path / "huge.toml"
    p.write_text("clock_mhz = " + "9" * 400 + "\n")
    with pytest.raises(SpecError, match=r"^clock_mhz = <a 1329-bit integer> is not allowed: must be 1\.\.5000 MHz$"):
        load_spec(str(p))
    p.write_text("[spgemm]\npes = 1000000000000\n")
    with pytest.raises(SpecError, match=r"^spgemm\.pes = 1000000000000 is not allowed: must be 1\.\.65536 PEs$"):
        load_spec(str(p))
