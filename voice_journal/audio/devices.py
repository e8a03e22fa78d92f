"""Which audio devices exist, as PortAudio (through sounddevice) sees them.

sounddevice is imported only when a device is needed, so that runs that
only read and write files need no PortAudio.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DeviceError


def import_sounddevice():
    """sounddevice, or a DeviceError that says how to get PortAudio."""
    try:
        import sounddevice
    except OSError as e:  # the module raises OSError when libportaudio is missing
        raise DeviceError(
            f"PortAudio is not available ({e}); install it with `sudo apt-get install libportaudio2`, "
            "or use --input FILE and --reply-audio FILE instead of a microphone and speaker"
        ) from None
    return sounddevice


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    inputs: int
    outputs: int
    default_rate: float
    is_default_input: bool
    is_default_output: bool


def devices() -> list[Device]:
    """The audio devices PortAudio sees (raises DeviceError without PortAudio)."""
    sd = import_sounddevice()
    try:
        found = sd.query_devices()
        default_in, default_out = sd.default.device
    except Exception as e:  # PortAudioError
        raise DeviceError(f"PortAudio cannot list the audio devices: {e}") from None
    return [
        Device(d["index"], d["name"], d["max_input_channels"], d["max_output_channels"], d["default_samplerate"],
               d["index"] == default_in, d["index"] == default_out)
        for d in found
    ]


def describe_devices(kind: str) -> str:
    """A one-line list of the devices of one kind ("input" or "output"), for error messages."""
    try:
        found = [d for d in devices() if (d.inputs if kind == "input" else d.outputs) > 0]
    except DeviceError:
        return f"PortAudio lists no {kind} device"
    if not found:
        return f"PortAudio lists no {kind} device"
    return f"PortAudio's {kind} devices: " + ", ".join(f"{d.index}: {d.name}" for d in found)


def device_arg(value: str | None) -> str | int | None:
    """A --input-device/--output-device value: an index if it is a number, else a name."""
    if value is None or value == "":
        return None
    return int(value) if value.strip().isdigit() else value
