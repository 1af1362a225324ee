export class LabExistsError extends Error {
  constructor(
    readonly id: string,
    root: string,
  ) {
    super(`lab ${id} already exists under ${root}`);
    this.name = 'LabExistsError';
  }
}

export function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}
