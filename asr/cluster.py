"""`asr transcribe --ray`: a batch on a Ray cluster instead of local worker processes.

One Ray actor per worker slot loads the model once and transcribes the files handed to it with
batch.transcribe_one, reading each file and writing its outputs itself (so inputs and the output folder sit on
storage every node sees at the same path). The driver only expands the inputs, hands out paths one at a time
(a long file never holds up the short ones queued behind it) and reports the outcomes in input order, through
batch.run_batch: skip-existing, the summary, the exit status and the outputs are the local batch's, byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections import deque

from .atomic import remove_leftovers
from .batch import BatchStopped, Input, Outcome, output_paths, run_batch, transcribe_one
from .messages import first_line

LOCAL = "local"  # a private one-machine Ray started for this run, and stopped after it
_CONNECT_TIMEOUT = 5.0  # Ray's own connect waits forever on an address where nothing listens
_STOP_GRACE = 5.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_LOCAL_OBJECT_STORE = 100 << 20  # outcomes are a few kB each; the default (30 % of memory) only takes /dev/shm


class ClusterError(Exception):
    """No cluster to run on: Ray missing, nothing at the address, or no actor could start."""


class _Worker:
    """A Ray actor's state: one Recognizer for every file sent to it."""

    def __init__(self, loader):
        # A failure is kept and told by ready(): raised here, Ray would keep only its own wrapping of it.
        self.rec, self.error = None, None
        try:
            self.rec = loader()
        except Exception as e:
            self.error = first_line(e) or type(e).__name__

    def ready(self) -> str | None:
        """None once the model is loaded, else why it could not be."""
        return self.error

    def transcribe(self, item: Input, formats: list[str], output_dir: str | None) -> Outcome:
        return transcribe_one(item, formats, output_dir, self.rec)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'asr[cluster]' (or pip install -e '.[cluster]')") from None
    return ray


def _probe(address: str) -> None:
    """Fail in seconds, with the address named, where nothing listens (ray.init would wait there for ever)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"--ray {address}: expected auto, local or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT).close()
    except OSError as e:
        raise ClusterError(f"no Ray cluster at {address}: {e.strerror or first_line(e)} "
                           "(start one with `ray start --head`)") from None


def connect(address: str = "auto") -> bool:
    """Join the cluster at address (auto: $RAY_ADDRESS or the one `ray start` left on this machine; local: a
    private one here). Returns whether this call connected (and so should disconnect); False when the caller
    had already connected this process to Ray itself."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    if address == LOCAL:
        ray.init(include_dashboard=False, object_store_memory=_LOCAL_OBJECT_STORE, **quiet)
        return True
    try:  # private in Ray; without it there is no probe, and Ray's own error (or wait) stands
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        canonicalize_bootstrap_address = None
    if canonicalize_bootstrap_address is not None:
        try:
            resolved = canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError) as e:
            raise ClusterError(f"--ray {address}: {first_line(e)} (start a cluster with `ray start --head`, or "
                               "give --ray local for one on this machine alone)") from None
        _probe(resolved or address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {first_line(e)}") from None
    return True


class RayRunner:
    """batch.run_batch's runner: transcribe_one on Ray actors (actors: how many; 0 means one per cluster CPU,
    threads: onnxruntime threads, and so Ray CPUs, per actor)."""

    def __init__(self, address: str = "auto", actors: int = 0, threads: int = 1):
        self.address, self.actors, self.threads = address, actors, max(1, threads)

    def __call__(self, inputs: list[Input], formats, output_dir, loader, report, note) -> str:
        if not inputs:
            return "Ray"
        ray = _import_ray()
        connected = _keeping_signal_handlers(lambda: connect(self.address))
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            biggest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
            if self.threads > biggest:  # Ray would keep such an actor pending, and the batch waiting, for ever
                raise ClusterError(f"--threads {self.threads}: no node of the Ray cluster has that many CPUs "
                                   f"(the largest has {biggest:g})")
            count = min(len(inputs), self.actors or max(1, cpus // self.threads))
            _Pool(ray, count, self.threads, loader, inputs, formats, output_dir, report, note).run()
        finally:
            if connected:
                ray.shutdown()
        return f"Ray, {count} actor{'s' if count != 1 else ''} on {cpus} CPUs"


class _Pool:
    """Actors fed one file at a time; an actor that dies is replaced, and the file it held is tried once more on
    the new one (a node lost mid-file is not the file's fault) before it counts as that file's failure."""

    def __init__(self, ray, count, threads, loader, inputs, formats, output_dir, report, note):
        self.ray, self.loader, self.formats, self.output_dir = ray, loader, formats, output_dir
        self.report, self.note = report, note
        self.actor_class = ray.remote(_Worker).options(num_cpus=threads, max_restarts=0, max_task_retries=0)
        self.queue = deque(enumerate(inputs))
        self.attempts: dict[int, int] = {}
        self.finished: dict[int, Outcome] = {}
        self.next_index = 0
        self.starting = {}  # ready() ref -> actor
        self.running = {}  # transcribe ref -> (actor, index, item)
        self.idle = []  # started, with nothing left to give them (until a lost file comes back)
        self.started_one = False
        self.start_errors: list[str] = []
        for _ in range(count):
            self._start_actor()

    def _start_actor(self) -> None:
        actor = self.actor_class.remote(self.loader)
        self.starting[actor.ready.remote()] = actor

    def run(self) -> None:
        stop: list[int] = []
        try:
            with _deferred_signals(stop):
                while self.queue or self.running:
                    if not self.starting and not self.running:
                        raise ClusterError("no Ray actor could load the model: " + "; ".join(self.start_errors[:1]))
                    done, _ = self.ray.wait([*self.starting, *self.running], num_returns=1, timeout=0.5)
                    if stop:
                        raise BatchStopped(stop[0])
                    for ref in done:
                        if ref in self.starting:
                            self._on_ready(ref)
                        else:
                            self._on_done(ref)
        except BaseException:
            self._abandon()
            raise

    def _on_ready(self, ref) -> None:
        actor = self.starting.pop(ref)
        try:
            error = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # its process died, or could not be started
            error = _cause(e)
        if error:
            self.ray.kill(actor, no_restart=True)
            self.start_errors.append(error)
            if self.started_one:
                self.note(f"asr: a Ray actor failed to start: {error}")
            return
        self.started_one = True
        self._feed(actor)

    def _feed(self, actor) -> None:
        if self.queue:
            index, item = self.queue.popleft()
            self.running[actor.transcribe.remote(item, self.formats, self.output_dir)] = (actor, index, item)
        else:
            self.idle.append(actor)

    def _on_done(self, ref) -> None:
        actor, index, item = self.running.pop(ref)
        try:
            outcome = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as e:
            self._lost(actor, index, item, e)
            return
        except self.ray.exceptions.RayError as e:  # the call itself failed (not the file): that file's failure
            outcome = Outcome(item.path, None, 0.0, f"{item.path}: {_cause(e)}")
        self._finish(index, outcome)
        self._feed(actor)

    def _lost(self, actor, index, item, error) -> None:
        self._clean(item)
        self.attempts[index] = self.attempts.get(index, 0) + 1
        if self.attempts[index] < 2:
            self.note(f"asr: the Ray worker transcribing {item.path} died ({_cause(error)}); trying it again")
            self.queue.appendleft((index, item))
            if self.idle:
                self._feed(self.idle.pop())
        else:
            self._finish(index, Outcome(item.path, None, 0.0, f"{item.path}: the Ray worker transcribing it died "
                                        f"twice ({_cause(error)})"))
        self.ray.kill(actor, no_restart=True)
        self._start_actor()

    def _finish(self, index: int, outcome: Outcome) -> None:
        self.finished[index] = outcome
        while self.next_index in self.finished:
            self.report(self.finished.pop(self.next_index))
            self.next_index += 1

    def _clean(self, item: Input) -> None:
        for target in output_paths(item, self.output_dir, self.formats).values() if self.output_dir else ():
            remove_leftovers(target)

    def _abandon(self) -> None:
        """Stopped (a signal, or no actor left): interrupt the files in flight, which removes their temporary
        outputs, then end the actors; what finished is still reported."""
        for ref in self.running:
            self.ray.cancel(ref)
        if self.running:
            self.ray.wait(list(self.running), num_returns=len(self.running), timeout=_STOP_GRACE)
        for actor, _, item in self.running.values():
            self.ray.kill(actor, no_restart=True)
        for actor in self.starting.values():
            self.ray.kill(actor, no_restart=True)
        time.sleep(0.2)  # ray.kill returns before the process is gone
        for _, _, item in self.running.values():
            self._clean(item)
        for index in sorted(self.finished):
            self.report(self.finished.pop(index))


def _keeping_signal_handlers(call):
    """call(), with the SIGTERM and SIGINT handlers it found put back: Ray's driver installs its own, which abort
    the process, where the batch's stop cleanly and say how to resume."""
    if threading.current_thread() is not threading.main_thread():
        return call()
    saved = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
    try:
        return call()
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)


@contextlib.contextmanager
def _deferred_signals(stop: list[int]):
    """SIGTERM and SIGINT noted in stop instead of raised: an exception raised inside Ray's wait is mangled into
    a SystemError, so the pool's loop checks stop between waits and raises BatchStopped itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, lambda signum, frame: stop.append(signum)) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _cause(error: BaseException) -> str:
    """The one line that says why a Ray call failed, not Ray's wrapping of it: the exception a task raised, or
    where a worker process that died ran (Ray's own account of a death is a page of possible causes)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return first_line(cause) or type(cause).__name__
    fields = dict(line.strip().split(": ", 1) for line in str(error).splitlines()
                  if line.startswith("\t") and ": " in line)
    if "pid" in fields:
        return f"pid {fields['pid']}" + (f" on {fields['ip']}" if "ip" in fields else "")
    return first_line(error) or type(error).__name__


def transcribe(files: list[str], output_dir: str | None = None, formats=("txt",), address: str = "auto",
               actors: int = 0, threads: int = 1, skip_existing: bool = False, loader=None,
               progress: bool = False) -> int:
    """`asr transcribe --ray` from Python: files, folders and globs as on the command line; returns the exit
    status (0 all transcribed, 1 some failed, 2 colliding output names) and raises ClusterError when there is no
    cluster to run on or no actor could load the model. loader: a picklable callable that builds the Recognizer
    on each actor (default: the bundled model, as Recognizer.load() decodes it)."""
    from functools import partial

    from .batch import expand_inputs
    from .recognizer import Recognizer

    loader = loader or partial(Recognizer.load, threads=threads)
    return run_batch(expand_inputs(list(files)), list(formats), output_dir, loader, skip_existing=skip_existing,
                     progress=progress, runner=RayRunner(address, actors, threads))
