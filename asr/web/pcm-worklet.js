// AudioWorklet processor: the microphone at the AudioContext's rate -> 16 kHz PCM16 blocks for `asr serve`.
// Resampling happens here, on the audio thread, with a windowed-sinc low-pass: the context's rate is whatever the
// sound card runs at (44.1 or 48 kHz mostly), and plain interpolation would fold everything above 8 kHz into the
// band the model listens to.

const BLOCK_SECONDS = 0.05; // one message per 50 ms: small enough for live partials, few enough messages
const ZERO_CROSSINGS = 24; // kernel half-width in output samples: flat to 7 kHz, 1.5 ms of delay
const CUTOFF = 0.475; // of the lower rate: -4 dB at 7.5 kHz, -70 dB from 8.5 kHz when 16 kHz is the lower rate
const TABLE_STEPS = 256; // kernel values per input sample, linearly interpolated

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const target = options.processorOptions.targetRate;
    this.step = sampleRate / target; // input samples per output sample
    const scale = Math.max(1, this.step);
    const cutoff = CUTOFF / scale; // cycles per input sample
    this.half = Math.ceil(ZERO_CROSSINGS * scale); // kernel half-width in input samples
    // A Blackman-windowed sinc, tabulated once: the audio thread then spends a lookup per tap, not three cosines.
    this.table = new Float32Array(this.half * TABLE_STEPS + 2);
    for (let i = 0; i < this.table.length; i++) {
      const x = i / TABLE_STEPS;
      if (x >= this.half) break;
      const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / this.half) + 0.08 * Math.cos((2 * Math.PI * x) / this.half);
      const a = 2 * Math.PI * cutoff * x;
      this.table[i] = w * (x === 0 ? 1 : Math.sin(a) / a);
    }
    this.history = new Float32Array(4 * this.half + 1024);
    this.length = 0; // samples held in history
    this.first = 0; // absolute input index of history[0]
    this.next = 0; // absolute index of the next output sample
    this.blockSize = Math.round(target * BLOCK_SECONDS);
    this.block = new Int16Array(this.blockSize);
    this.filled = 0;
    this.energy = 0;
  }

  kernel(x) {
    const pos = Math.abs(x) * TABLE_STEPS;
    const i = Math.floor(pos);
    if (i + 1 >= this.table.length) return 0;
    return this.table[i] + (pos - i) * (this.table[i + 1] - this.table[i]);
  }

  append(channels) {
    const n = channels[0].length;
    if (this.length + n > this.history.length) {
      const grown = new Float32Array(2 * (this.length + n));
      grown.set(this.history.subarray(0, this.length));
      this.history = grown;
    }
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (const ch of channels) sum += ch[i];
      this.history[this.length + i] = sum / channels.length; // mono: the mean of the channels
    }
    this.length += n;
  }

  emit(sample) {
    const v = Math.max(-1, Math.min(1, sample));
    this.energy += v * v;
    this.block[this.filled++] = Math.round(v < 0 ? v * 32768 : v * 32767);
    if (this.filled === this.blockSize) {
      const rms = Math.sqrt(this.energy / this.filled);
      const pcm = this.block.buffer;
      this.port.postMessage({ pcm, level: rms > 0 ? 20 * Math.log10(rms) : -120 }, [pcm]);
      this.block = new Int16Array(this.blockSize); // the old one went to the page with its buffer
      this.filled = 0;
      this.energy = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no source connected (yet)
    this.append(channels);
    const end = this.first + this.length;
    for (;;) {
      const centre = this.next * this.step;
      if (centre + this.half >= end) break; // wait for the samples right of the centre
      const lo = Math.max(this.first, Math.ceil(centre - this.half));
      const hi = Math.floor(centre + this.half);
      let acc = 0;
      let weights = 0;
      for (let k = lo; k <= hi; k++) {
        const w = this.kernel(centre - k);
        acc += w * this.history[k - this.first];
        weights += w;
      }
      this.emit(weights > 0 ? acc / weights : 0); // dividing by the weights keeps the gain exactly 1 at DC
      this.next++;
    }
    const keep = Math.max(this.first, Math.floor(this.next * this.step - this.half));
    const drop = keep - this.first;
    if (drop > 0) {
      this.history.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.first = keep;
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
