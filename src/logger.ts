import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, type Logger } from 'pino';

export type { Logger };

interface RequestContext {
  requestId: string;
  /** Ends the request's announced write (http/arriving-writes.ts) once it waits for the kernel. */
  endWrite?: () => void;
}

/** Carries the request id into every log line written while a request is handled. */
export const requestContext = new AsyncLocalStorage<RequestContext>();

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'routeplane' },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin: () => {
        const ctx = requestContext.getStore();
        return ctx ? { request_id: ctx.requestId } : {};
      },
      // Belt and braces: nothing logs these, but a future line that did would still not leak them.
      redact: {
        paths: [
          'req.headers.authorization',
          'headers.authorization',
          'authorization',
          'token',
          'password',
          'vault_password',
          'extravars',
        ],
        censor: '[redacted]',
      },
    },
    destination as never,
  );
}
