// Whether QEMU can use KVM on the machine the tests run on, and the one way an integration test
// skips what truly needs it. Everything else runs under TCG (`-accel tcg`, or `-machine none` for
// QMP only): machines of the same kind differ in having /dev/kvm (docs: testing-notes.md).
// Owns: those two facts and the printed skip reason. Must not: decide anything about SEV support
// (src/host does, and is what some of these tests check).
import { accessSync, constants, statSync } from 'node:fs';
import type { TestContext } from 'vitest';

/** A usable /dev/kvm: a character device this process may open read-write (an empty file bind-mounted over it, as used to hide KVM, is not). */
function usableKvm(): boolean {
  try {
    if (!statSync('/dev/kvm').isCharacterDevice()) return false;
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export const HAS_KVM = usableKvm();
/** The accelerator for tests where KVM is not what is tested but is welcome when present. */
export const ACCEL_KVM_IF_PRESENT = HAS_KVM ? 'kvm' : 'tcg';
/** Why a KVM-only test cannot run here; null when it can. */
export const NO_KVM_REASON = HAS_KVM ? null : 'needs KVM: /dev/kvm is missing or not usable on this host';

/**
 * Skip the current test when there is no KVM, saying why both in vitest's report and on stderr
 * (a skipped test shows only as "skipped" in the summary otherwise).
 */
export function skipWithoutKvm(ctx: TestContext, what: string): void {
  if (NO_KVM_REASON === null) return;
  const reason = `${what} ${NO_KVM_REASON}`;
  process.stderr.write(`${ctx.task.file.name} › ${ctx.task.name}: SKIPPED — ${reason}\n`);
  ctx.skip(reason);
}
