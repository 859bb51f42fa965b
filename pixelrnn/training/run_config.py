"""Run configuration: TOML/JSON files, presets and ``--set key=value`` overrides, resolved once.

A run configuration has three sections::

    [model]  preset (optional), arch, hidden, layers, residual, skip, ... (ModelConfig fields;
             channels and levels come from the dataset, and must match it if given)
    [data]   dataset, data_dir, download, train_split, valid_split, test_split, cache, and the
             preprocessing of every dataset kind: levels + mapping, size + resize, channels
    [train]  steps, batch_size, optimizer, lr, schedule, ... (TrainConfig fields)

A configuration file is a path or the name of one shipped with the package
(``pixelrnn/configs/NAME.toml``: the experiments of section 4; :func:`find_config`).

The resolved configuration (every default filled in, every field of the model written out) is
saved as ``config.json`` in the run folder, so a run is reproducible from its folder alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..config import ARCHITECTURES, ModelConfig, MultiScaleConfig, default_output_hidden
from ..data.preprocess import MAX_LEVELS, Preprocessing
from ..errors import ConfigError, DatasetError
from ..presets import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OPTIMIZERS = ("rmsprop", "adam")
SCHEDULES = ("constant", "exponential", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class DataConfig:
    dataset: str = "digits"  # a named dataset (pixelrnn datasets), folder:PATH or npz:PATH
    data_dir: str | None = None  # where the files are; None: $PIXELRNN_DATA_DIR, then the cache
    download: bool = False  # fetch missing files of a named dataset and check them
    levels: int = 0  # values per sub-pixel; 0 = the dataset's own (pixelrnn/data/preprocess.py)
    mapping: str = "exact"  # how 8-bit samples become levels: exact (0/255 -> 0/1, or values already below levels) | quantise
    size: list = field(default_factory=list)  # [H, W]: every image resized (data.resize); [] = as they are
    resize: str = "crop"  # crop (cover H x W, aspect kept, cut the middle) | fit (scaled to exactly H x W)
    channels: int = 0  # 1 (grey) | 3 (colour); 0 = the dataset's own
    train_split: str = "train"  # the split trained on
    valid_split: str = "valid"  # the split validated on; "" for none
    test_split: str = "test"  # the split evaluate scores by default
    cache: bool = True  # read the splits from the prepared cache (memory-mapped); false: into memory


@dataclass
class TrainConfig:
    """The paper's recipe by default: RMSProp, batch 16, no augmentation (section 5.2)."""

    steps: int = 10000  # optimizer steps of the whole run
    batch_size: int = 16  # images per step, over all processes under torchrun
    optimizer: str = "rmsprop"  # rmsprop (the paper's) | adam
    lr: float = 1e-3  # learning rate (the peak, with warm-up or a schedule)
    schedule: str = "constant"  # constant | exponential (lr_decay per step) | cosine (to 0 at the last step)
    lr_decay: float = 0.99999  # per step, for the exponential schedule
    warmup_steps: int = 0  # the learning rate rises linearly over these first steps
    weight_decay: float = 0.0  # L2 penalty in the gradient (torch.optim weight_decay)
    grad_clip: float = 1.0  # max global gradient norm of the per-dimension loss; 0 disables
    ema_decay: float = 0.0  # Polyak/EMA of the weights used for evaluation and sampling; 0 disables
    seed: int = 0  # initial weights and the order of the batches
    log_every: int = 10  # steps between training records in metrics.jsonl
    eval_every: int = 500  # steps between validations
    eval_images: int = 1000  # validation images used at each evaluation (the first ones); 0 = the whole split
    eval_batch_size: int = 64  # images per batch when validating
    checkpoint_every: int = 200  # steps between saves of the state
    max_minutes: float = 0.0  # wall-clock budget; 0 = none
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto: bf16 autocast on CUDA devices that support it, else fp32; fp32; bf16
    compile: bool = False  # torch.compile the model for training
    num_threads: int = 0  # torch CPU threads; 0 = torch's default
    tensorboard: bool = False  # also log to RUN_DIR/tensorboard (extra [tensorboard]); metrics.jsonl stays the record


SECTIONS = {"data": DataConfig, "train": TrainConfig}
MODEL_KEYS = {f.name for f in dataclasses.fields(ModelConfig)} | {"preset"}


@dataclass
class RunConfig:
    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self, model_config: ModelConfig | MultiScaleConfig | None = None) -> dict:
        """Plain sections; with ``model_config`` (this run's network) every model field is written out."""
        model = dict(self.model)
        if model_config is not None:
            model = {**({"preset": model["preset"]} if "preset" in model else {}), **model_config.to_dict()}
        return {"model": model, "data": dataclasses.asdict(self.data), "train": dataclasses.asdict(self.train)}

    def model_config(self, channels: int, levels: int, classes: int = 0, class_names: tuple[str, ...] = ()):
        """The network for a dataset of ``channels`` x ``levels``: preset, then explicit keys.

        ``classes`` is the number of classes of a labelled dataset (0: no labels) and ``class_names`` their names:
        ``model.classes = "auto"`` takes that number, and a class-conditional network with as many classes as the
        dataset names takes the names unless ``model.class_names`` gives its own.
        """
        if self.model.get("arch") == "multiscale":
            stages = {stage: RunConfig(model=dict(self.model.get(stage, {}))).model_config(channels, levels, classes, class_names).to_dict()
                      for stage in ("small", "large")}
            return MultiScaleConfig.from_dict({**self.model, **stages})
        values = dict(self.model)
        if values.get("classes") == "auto":
            if not classes:
                raise ConfigError("model.classes = \"auto\" takes the number of classes of the dataset, and it has no labels; "
                                  "labelled datasets: mnist, cifar10, cifar10_subset, imagenet32/64, digits, folder: with "
                                  "sub-folders, npz: with <split>_labels")
            values["classes"] = classes
        if "classes" in values and (isinstance(values["classes"], bool) or not isinstance(values["classes"], int) or values["classes"] < 0):
            raise ConfigError(f"model.classes={values['classes']!r}; give a number of classes >= 0 (0: unconditional) or \"auto\"")
        if values.get("classes") and "class_names" not in values and len(class_names) == values["classes"]:
            values["class_names"] = list(class_names)
        preset_name = values.pop("preset", None)
        for key, wanted in (("channels", channels), ("levels", levels)):
            if values.get(key, wanted) != wanted:
                raise ConfigError(f"model.{key}={values[key]}, but the dataset has {key}={wanted}")
        merged = {}
        if preset_name:
            merged.update(PRESETS[preset_name].config.to_dict())
            for key, wanted in (("channels", channels), ("levels", levels)):
                if merged[key] != wanted:
                    raise ConfigError(f"preset {preset_name!r} is for {key}={merged[key]}, but the dataset has {key}={wanted}")
        merged.update(values)
        merged.update(channels=channels, levels=levels)
        merged.setdefault("output_hidden", default_output_hidden(channels, merged.get("hidden")))
        if "arch" not in merged:
            raise ConfigError(f"no model architecture given; set model.arch to one of {', '.join(ARCHITECTURES)} or model.preset")
        return ModelConfig.from_dict(merged)




def parse_value(text: str):
    """A command-line value as TOML would read it (numbers, booleans, strings, lists)."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def shipped_configs() -> dict[str, Path]:
    """The run configurations that come with the package (``pixelrnn/configs/*.toml``), by name."""
    folder = resources.files("pixelrnn") / "configs"
    return {Path(entry.name).stem: Path(str(entry)) for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".toml")}


def describe_config(path: str | Path) -> str:
    """What a configuration trains: its first comment's first sentence, however many lines it spans."""
    words = []
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#"):
            if words:
                break
            continue
        words.append(line.lstrip("# ").strip())
        if "." in words[-1]:
            break
    text = " ".join(words)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def find_config(spec: str | Path) -> Path:
    """A config file: an existing path, else a shipped configuration named ``NAME``, ``NAME.toml``
    or ``configs/NAME.toml`` (so a checkout's command lines work from an installed package)."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if path.parent.name in ("", "configs") and path.suffix in ("", ".toml") and path.stem in shipped:
        return shipped[path.stem]
    raise ConfigError(f"config file {spec} does not exist; the shipped configs are {', '.join(shipped)} (`pixelrnn configs`)")


def load_file(path: str | Path) -> dict:
    path = find_config(path)
    try:
        raw = json.loads(path.read_text()) if path.suffix == ".json" else tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ConfigError(f"config file {path} is not valid {kind}: {str(error).splitlines()[0] if str(error) else 'nested too deeply'}") from None
    if not isinstance(raw, dict) or not all(isinstance(values, dict) for values in raw.values()):
        raise ConfigError(f"config file {path} is not a run configuration: it must hold sections (model, data, train) of key = value lines")
    return raw


def set_key(raw: dict, dotted: str, value) -> None:
    *path, key = dotted.split(".")
    if not path or not key:
        raise ConfigError(f"override {dotted!r} must name a section and a key, e.g. model.hidden=32 or train.lr=3e-4")
    table = raw
    for part in path:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(f"override {dotted!r}: {part} is a value, not a section")
    table[key] = value


def resolve(raw: dict) -> RunConfig:
    """Check every key, type and range and fill in defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a run configuration is a table of sections (model, data, train), not a {type(raw).__name__}")
    unknown_sections = sorted(set(raw) - {"model", "data", "train"})
    if unknown_sections:
        raise ConfigError(f"unknown config section(s) {', '.join(map(_named, unknown_sections))}; sections are model, data, train")
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config section {_named(name)} is {_shown(values)}; it must be a table of key = value lines")
    model = dict(raw.get("model", {}))
    if model.get("arch") == "multiscale":
        MultiScaleConfig.check_keys(model)
        for stage in ("small", "large"):
            check_model_keys(model[stage], f"model.{stage}.")
    else:
        check_model_keys(model, "model.")
    sections = {}
    for name, cls in SECTIONS.items():
        values = dict(raw.get(name, {}))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown key(s) {name}.{f', {name}.'.join(map(_named, unknown))}; known: {', '.join(sorted(fields))}")
        defaults = cls()
        for key, value in values.items():
            expected = type(getattr(defaults, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                values[key] = float(value)
            elif getattr(defaults, key) is None:
                if value is not None and not isinstance(value, str):
                    raise ConfigError(f"{name}.{key}={_shown(value)} should be a string (a path)")
            elif not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                raise ConfigError(f"{name}.{key}={_shown(value)} should be of type {expected.__name__}")
        sections[name] = cls(**values)
    config = RunConfig(model=model, **sections)
    check_data(config.data)
    check_train(config.train)
    preprocessing(config.data)  # checks data.levels, mapping, size, resize, channels (one-line errors)
    return config


def preprocessing(data: DataConfig) -> dict:
    """The keyword arguments of ``load_dataset`` that preprocess a run's images (``levels`` ... ``channels``), checked."""
    try:
        prep = Preprocessing.of(data.levels, data.mapping, data.size, data.resize, data.channels)
    except DatasetError as error:
        raise ConfigError(str(error)) from None
    return {"levels": prep.levels, "mapping": prep.mapping, "size": prep.size, "resize": prep.resize, "channels": prep.channels}


def _named(key) -> str:
    """A key for a one-line message: as written when printable, else its repr (no line breaks)."""
    return key if isinstance(key, str) and key.isprintable() else repr(key)


def _shown(value) -> str:
    """A value for a one-line message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_model_keys(model: dict, prefix: str) -> None:
    unknown = sorted(set(model) - MODEL_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {prefix}{f', {prefix}'.join(map(_named, unknown))}; known: {', '.join(sorted(MODEL_KEYS))}")
    for key in ("preset", "arch"):
        if key in model and not isinstance(model[key], str):
            raise ConfigError(f"{prefix}{key}={_shown(model[key])} should be a string (a name)")
    if "preset" in model and model["preset"] not in PRESETS:
        raise ConfigError(f"unknown preset {model['preset']!r}; choose one of {', '.join(PRESETS)}")
    if "arch" in model and model["arch"] not in ARCHITECTURES:
        # a whole config with arch = "multiscale" never comes here; its stages must be single networks
        extra = ", multiscale" if prefix == "model." else ""
        raise ConfigError(f"unknown architecture {model['arch']!r} for {prefix}arch; choose one of {', '.join(ARCHITECTURES)}{extra}")


# Integer keys of [train]: (least, most) accepted.
TRAIN_INTEGERS = {"steps": (1, 10**12), "batch_size": (1, 1 << 20), "warmup_steps": (0, 10**12), "seed": (0, 2**32 - 1),
                  "log_every": (1, 10**12), "eval_every": (1, 10**12), "eval_images": (0, 1 << 31),
                  "eval_batch_size": (1, 1 << 20), "checkpoint_every": (1, 10**12), "num_threads": (0, 4096)}
# Float keys of [train]: (least, most, whether the least is accepted, what the message says).
TRAIN_FLOATS = {"lr": (0.0, 10.0, False, "a finite number in (0, 10]"),
                "lr_decay": (0.0, 1.0, False, "a finite number in (0, 1]"),
                "weight_decay": (0.0, 1000.0, True, "a finite number in [0, 1000]"),
                "grad_clip": (0.0, 1e12, True, "a finite number >= 0 (0 disables clipping)"),
                "max_minutes": (0.0, 1e9, True, "a finite number of minutes >= 0 (0: no budget)")}


def check_train(train: TrainConfig) -> None:
    """Every value of [train] against its range: one line naming the key and what is accepted."""
    if train.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer={train.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if train.schedule not in SCHEDULES:
        raise ConfigError(f"train.schedule={train.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if train.precision not in PRECISIONS:
        raise ConfigError(f"train.precision={train.precision!r}; choose one of {', '.join(PRECISIONS)}")
    for key, (least, most) in TRAIN_INTEGERS.items():
        value = getattr(train, key)
        if not least <= value <= most:
            raise ConfigError(f"train.{key}={value} is outside its range; it must be an integer in [{least}, {most:,}]")
    for key, (least, most, least_ok, accepted) in TRAIN_FLOATS.items():
        value = getattr(train, key)
        if not (math.isfinite(value) and (value > least or (least_ok and value == least)) and value <= most):
            raise ConfigError(f"train.{key}={value} is invalid; it must be {accepted}")
    if not (math.isfinite(train.ema_decay) and 0.0 <= train.ema_decay < 1.0):
        raise ConfigError(f"train.ema_decay={train.ema_decay} must be in [0, 1) (0 disables the average)")
    if not train.device:
        raise ConfigError("train.device='' names no device; use auto, cpu, cuda or cuda:N")


def check_data(data: DataConfig) -> None:
    """The values of [data]: a dataset name, levels 0 or 2..MAX_LEVELS (codes above 256 are stored as uint16), split names."""
    if not data.dataset.strip():
        raise ConfigError("data.dataset='' names no dataset; give a name, folder:PATH or npz:PATH")
    if data.levels != 0 and not 2 <= data.levels <= MAX_LEVELS:
        raise ConfigError(f"data.levels={data.levels} is invalid; it must be 0 (the dataset's own) or an integer in [2, {MAX_LEVELS}]")
    for key in ("train_split", "test_split"):
        if not getattr(data, key).strip():
            raise ConfigError(f"data.{key}='' names no split; give a split name such as train or test")


def build_run_config(config_file=None, overrides=(), **shortcuts) -> RunConfig:
    """Config file, then shortcut flags (``dataset=``, ``arch=``, ...), then ``--set`` overrides."""
    raw = load_file(config_file) if config_file else {}
    raw = {section: dict(values) for section, values in raw.items()}
    for dotted, value in shortcuts.items():
        if value is not None:
            set_key(raw, dotted, value)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. model.hidden=32")
        set_key(raw, key.strip(), parse_value(value.strip()))
    return resolve(raw)
