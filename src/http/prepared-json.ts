import type { Response } from 'express';

/** A response body serialized once, for a read answered many times with the same value. */
export class PreparedJson {
  readonly text: string;

  constructor(readonly value: unknown) {
    this.text = JSON.stringify(value);
  }
}

/**
 * Sends the prepared text as res.json would send the value (same bytes, same content type).
 * When something wrapped res.json on this response (response validation does, in tests), the
 * value goes through it instead, so it is still checked.
 */
export function sendPrepared(res: Response, body: PreparedJson): void {
  if (Object.hasOwn(res, 'json')) {
    res.json(body.value);
    return;
  }
  res.type('application/json').send(body.text);
}
