"""diffusers `ModelMixin` / `ConfigMixin` versions of hywu's networks, for training, saving and the ecosystem.

Each class adds `save_pretrained` / `from_pretrained` (a folder with `config.json` and
`diffusion_pytorch_model.safetensors`) to the plain network it inherits from; the forward code is the network's.
The editing pipeline loads the same folders with `hywu_cli.network_io.load_network`, which skips importing
diffusers, so `hywu edit` starts about two seconds sooner on a 2-core CPU.

The `__init__` signatures repeat the networks' keyword arguments because `register_to_config` records
exactly the parameters in the signature.
"""

from __future__ import annotations

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from hywu_cli.condition import ConditionEncoderNetwork
from hywu_cli.editor import LiteEditorNetwork
from hywu_cli.generator import ParameterGeneratorNetwork
from hywu_cli.instruction_reader import InstructionReaderNetwork
from hywu_cli.phrasings import FAMILY_PHRASINGS


class LiteEditor(LiteEditorNetwork, ModelMixin, ConfigMixin):
    """The base editor; see `hywu_cli.editor.LiteEditorNetwork`."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        text_dim: int = 384,
        thumbnail_size: int = 128,
        lut_nodes: int = 9,
        channels: tuple[int, ...] = (32, 64, 96, 128),
        hidden: int = 256,
        text_hidden: int = 128,
        smooth_spatial: bool = True,
    ) -> None:
        super().__init__(
            text_dim=text_dim,
            thumbnail_size=thumbnail_size,
            lut_nodes=lut_nodes,
            channels=channels,
            hidden=hidden,
            text_hidden=text_hidden,
            smooth_spatial=smooth_spatial,
        )


class ConditionEncoder(ConditionEncoderNetwork, ModelMixin, ConfigMixin):
    """The hybrid condition encoder; see `hywu_cli.condition.ConditionEncoderNetwork`."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        text_dim: int = 384,
        cond_dim: int = 128,
        image_size: int = 64,
        image_grid: int = 4,
        reading_families: list[str] | tuple[str, ...] = (),
        reading_grades: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            text_dim=text_dim,
            cond_dim=cond_dim,
            image_size=image_size,
            image_grid=image_grid,
            reading_families=list(reading_families),
            reading_grades=list(reading_grades),
        )


class ParameterGenerator(ParameterGeneratorNetwork, ModelMixin, ConfigMixin):
    """The parameter generator; see `hywu_cli.generator.ParameterGeneratorNetwork`."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        targets: list[list],
        rank: int = 4,
        token_dim: int = 64,
        cond_dim: int = 128,
        width: int = 128,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        lora_alpha: float = 4.0,
        layer_gains: dict[str, float] | None = None,
        position_bias: bool = False,
    ) -> None:
        super().__init__(
            targets=targets,
            rank=rank,
            token_dim=token_dim,
            cond_dim=cond_dim,
            width=width,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            lora_alpha=lora_alpha,
            layer_gains=layer_gains,
            position_bias=position_bias,
        )


class InstructionReader(InstructionReaderNetwork, ModelMixin, ConfigMixin):
    """The instruction reader; see `hywu_cli.instruction_reader.InstructionReaderNetwork`."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        families: list[str] | tuple[str, ...] = tuple(FAMILY_PHRASINGS),
        shared_layers: int = 4,
        num_layers: int = 2,
        hidden: int = 384,
        heads: int = 12,
        intermediate: int = 1536,
        eps: float = 1e-12,
        ensemble_size: int = 1,
    ) -> None:
        super().__init__(
            families=list(families),
            shared_layers=shared_layers,
            num_layers=num_layers,
            hidden=hidden,
            heads=heads,
            intermediate=intermediate,
            eps=eps,
            ensemble_size=ensemble_size,
        )
