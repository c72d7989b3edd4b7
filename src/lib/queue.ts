/**
 * Sends queue messages whose loss a cron sweep repairs (webhook deliveries, match requests):
 * the write that needed them stands, so a failed send is logged, not thrown.
 */
export async function sendOrLeaveToSweep(what: string, context: Record<string, unknown>, send: () => Promise<unknown>): Promise<void> {
  try {
    await send();
  } catch (error) {
    console.error(JSON.stringify({ level: "warn", message: `${what} not sent; the cron's sweep sends it`, ...context, error: String(error) }));
  }
}
