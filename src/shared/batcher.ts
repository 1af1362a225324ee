interface Pending<I, O> {
  input: I;
  resolve: (output: O) => void;
  reject: (err: unknown) => void;
}

/**
 * Runs concurrent calls of one operation together (group commit). A call made when nothing is
 * running runs at once, alone; calls made while a batch runs wait for it and then run as one
 * batch. Each database round trip costs the server about as much CPU as a small statement's
 * work, so 200 concurrent single writes become a handful of transactions, not 200.
 *
 * `run` gets the inputs of a batch and returns one output per input, in order. When a batch of
 * several fails, each of its calls runs again alone, so an error (a unique violation, say)
 * reaches only the call that caused it and every other call still succeeds.
 */
export class Batcher<I, O> {
  private readonly queue: Pending<I, O>[] = [];
  private running = false;

  constructor(
    private readonly run: (inputs: I[]) => Promise<O[]>,
    /** At most this many calls per batch. */
    private readonly maxCalls = 256,
  ) {}

  call(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxCalls);
        try {
          const outputs = await this.run(batch.map((p) => p.input));
          if (outputs.length !== batch.length) {
            throw new Error(`a batch of ${batch.length} calls returned ${outputs.length} results`);
          }
          batch.forEach((p, i) => p.resolve(outputs[i]!));
        } catch (err) {
          if (batch.length === 1) batch[0]!.reject(err);
          else await this.oneByOne(batch);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async oneByOne(batch: Pending<I, O>[]): Promise<void> {
    for (const p of batch) {
      try {
        const [output] = await this.run([p.input]);
        p.resolve(output!);
      } catch (err) {
        p.reject(err);
      }
    }
  }
}
