import type { Actor } from '../auth/roles.ts';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by the security handler for every authenticated operation. */
      actor?: Actor;
    }
  }
}

export {};
