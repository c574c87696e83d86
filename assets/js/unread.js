// "Mark all as read": one read request per unread room, a few at a time, so a
// user with hundreds of unread rooms does not open hundreds of requests.
const CONCURRENCY = 4;

/**
 * Runs `mark(room)` for every room, at most CONCURRENCY at once, calling
 * `done(room)` after each success. Resolves to how many failed.
 */
export async function markAllRead(rooms, mark, done) {
  const queue = [...rooms];
  let failed = 0;
  async function worker() {
    for (let room = queue.shift(); room; room = queue.shift()) {
      try {
        await mark(room);
        done(room);
      } catch {
        failed += 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
  return failed;
}
