// The browser checks' reporting, shared by check.mjs and oidc.mjs: one line per check, a
// failure's reason indented below it, the tally, and the exit status.

export const tally = { passed: 0, failed: 0 };

export async function check(name, body) {
  try {
    await body();
    tally.passed += 1;
    console.log(`ok   ${name}`);
  } catch (error) {
    tally.failed += 1;
    const [first, ...rest] = String(error?.message ?? error).split('\n');
    console.log(`FAIL ${name}: ${first}`);
    for (const line of rest.slice(0, 30)) if (line.trim()) console.log(`       ${line}`);
  }
}

// Something outside a check broke: that is a failure, never a skip.
export function broke(what, error) {
  tally.failed += 1;
  console.log(`FAIL ${what}: ${error?.stack ?? error}`);
}

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

export function expectEqual(actual, wanted, what) {
  if (actual !== wanted) throw new Error(`${what}: wanted ${JSON.stringify(wanted)}, got ${JSON.stringify(actual)}`);
}

// Prints "<label>: N passed, N failed" and returns the exit status.
export function summary(label) {
  console.log(`${label}: ${tally.passed} passed, ${tally.failed} failed`);
  return tally.failed === 0 ? 0 : 1;
}
