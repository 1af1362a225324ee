// Like Promise.all, but waits for every task before rejecting: cleanup after a failure must not
// race with setup steps still running (e.g. namespaces still being created).
export async function settleAll(tasks: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
