// The attestation hold: a measured guest waits paused until its owner approves or rejects it, the
// deadline passes, QEMU goes away, or the launch is aborted (stop, detach). While it waits, the
// owner may inject launch secrets; attest actions run one at a time, in the order they came (an
// approve must not overtake an injection).
// Owns: the decision, the deadline timer, the serial queue, and `sev-inject-launch-secret` with its
// secret-area default and QEMU's refusal named. Must not: move the VM's state, resume or stop QEMU
// (the lifecycle does, from the outcome), or log the secret (only its sizes).
import { setTimeout as delay } from 'node:timers/promises';
import { hasCode, SupervisorError } from '../errors.js';
import type { Logger } from '../log.js';
import { sevInjectLaunchSecret, type QmpExecutor } from '../qmp/commands.js';
import type { FirmwareInfo } from '../sev/firmware-file.js';
import { describeSecretAreaProblem } from '../sev/ovmf-table.js';
import type { GuestRecord } from './guest-record.js';
import type { AttestRequest, AttestResult } from './types.js';

/** How a hold ended. `aborted`: the launch's signal (stop or detach); `exited`: QEMU went away. */
export type HoldOutcome = 'approved' | 'rejected' | 'timeout' | 'aborted' | 'exited';

export interface HoldWait {
  /** When the guest is rejected if nobody decides (a re-attached guest keeps its first one). */
  readonly deadline: Date;
  /** Settles when QEMU exits. */
  readonly exited: Promise<unknown>;
  /** The launch's signal: stop() and detach() abort it. */
  readonly signal: AbortSignal;
}

export class AttestationHold {
  #decide: ((outcome: 'approved' | 'rejected') => void) | null = null;
  #decision: Promise<HoldOutcome> | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * Open a hold: from now on approve/reject are heard. MUST be called before the guest is reported
   * held, so that a decision that comes at once is not lost.
   */
  open(): void {
    this.#decision = new Promise((resolve) => {
      this.#decide = resolve;
    });
  }

  /** Wait for the first of: the owner's decision, the deadline, QEMU's exit, the launch's abort. */
  async wait(o: HoldWait): Promise<HoldOutcome> {
    if (this.#decision === null) this.open();
    const ended = new AbortController();
    const aborted = new Promise<HoldOutcome>((resolve) => {
      if (o.signal.aborted) resolve('aborted');
      o.signal.addEventListener('abort', () => resolve('aborted'), { once: true, signal: ended.signal });
    });
    const waitMs = Math.max(0, o.deadline.getTime() - Date.now());
    try {
      return await Promise.race([
        this.#decision ?? aborted,
        aborted,
        o.exited.then((): HoldOutcome => 'exited'),
        delay(waitMs, 'timeout' as const, { signal: ended.signal }).catch((): HoldOutcome => 'aborted'),
      ]);
    } finally {
      ended.abort();
      this.#decide = null;
      this.#decision = null;
    }
  }

  /** The owner's decision; heard only while a hold is open. */
  decide(outcome: 'approved' | 'rejected'): void {
    this.#decide?.(outcome);
  }

  /**
   * Run an attest action after every one queued before it; `admit` is asked when its turn comes
   * (it throws SUP_ERR_ATTEST_NOT_HELD unless the guest is still held).
   */
  exclusive<T>(admit: () => void, run: () => Promise<T>): Promise<T> {
    const turn = this.#queue.then(() => {
      admit();
      return run();
    });
    this.#queue = turn.catch(() => undefined);
    return turn;
  }
}

/**
 * The owner's actions on a held guest, one at a time through the hold's queue, each only while the
 * guest is still held when its turn comes.
 */
export class OwnerActions {
  readonly #g: GuestRecord;
  readonly #hold: AttestationHold;
  readonly #log: Logger;
  readonly #firmware: () => FirmwareInfo | null;
  readonly #snp: boolean;

  /** True for `attest: relay`: the owner's service decides, not the control API. */
  readonly #relayed: boolean;

  constructor(
    guest: GuestRecord,
    hold: AttestationHold,
    logger: Logger,
    firmware: () => FirmwareInfo | null,
    snp = false,
    relayed = false,
  ) {
    this.#g = guest;
    this.#hold = hold;
    this.#log = logger;
    this.#firmware = firmware;
    this.#snp = snp;
    this.#relayed = relayed;
  }

  /** Refuse approve and inject on a relayed guest unless forced (then warn, naming who). Reject stays open: failing closed is always allowed. */
  #checkRelayed(request: AttestRequest): void {
    if (!this.#relayed || request.action === 'reject') return;
    if (request.force !== true) {
      throw new SupervisorError(
        'SUP_ERR_ATTEST_RELAYED',
        `VM ${this.#g.vm} is relayed to its owner's service (attest: relay), which decides whether it runs; ` +
          `${request.action} is refused (reject is allowed; an operator who must override gives --force, which is logged)`,
        { details: { vm: this.#g.vm, action: request.action } },
      );
    }
    this.#log.warn(
      { event: 'relay-override', action: request.action, peer: request.peer ?? 'unknown' },
      `operator forced ${request.action} on a guest relayed to its owner's service`,
    );
  }

  #admit(action: string): () => void {
    const g = this.#g;
    return (): void => {
      if (g.state !== 'held') {
        throw new SupervisorError(
          'SUP_ERR_ATTEST_NOT_HELD',
          `VM ${g.vm} is ${g.state}, not held for attestation; ${action} applies only to a held guest`,
          {
            details: { vm: g.vm, state: g.state, action },
          },
        );
      }
    };
  }

  /** The relay's injection: through the same queue, only while held. @throws as inject-secret. */
  relayInject(packet: { readonly packetHeader: string; readonly secret: string }): Promise<void> {
    if (this.#snp) return Promise.reject(snpSecretRefusal(this.#g.vm));
    return this.#hold.exclusive(this.#admit('inject-secret'), async () => {
      await this.#inject(packet);
    });
  }

  /**
   * The relay's decision: through the same queue, only while held; unlike the API's approve it does
   * not wait for the resume (the relay runs inside the hold, which the resume follows).
   */
  relayDecide(outcome: 'approved' | 'rejected'): Promise<void> {
    return this.#hold.exclusive(this.#admit(outcome === 'approved' ? 'approve' : 'reject'), async () => {
      this.#log.info({ outcome }, "the owner's service decided");
      this.#hold.decide(outcome);
    });
  }

  async #inject(request: { readonly packetHeader: string; readonly secret: string; readonly gpa?: number }): Promise<InjectedSecret> {
    const g = this.#g;
    const injected = await injectLaunchSecret(g.requireQmp(), g.vm, this.#firmware(), request);
    g.secretsInjected += 1;
    g.persist();
    // Durable before the owner hears it: a restarted daemon must report the same count.
    await g.persisted();
    this.#log.info(injected, 'launch secret injected');
    g.emit({ event: 'secret-injected', ...injected });
    return injected;
  }

  /**
   * approve: `cont` (the lifecycle's resume), resolved once QEMU runs. reject: the guest is
   * destroyed and never runs. inject-secret: may be repeated before approve; without `gpa` the
   * firmware's launch-secret area is used.
   * @throws SUP_ERR_ATTEST_NOT_HELD unless held; SUP_ERR_SECRET_NO_AREA, SUP_ERR_SECRET_REFUSED;
   *   SUP_ERR_SECRET_SNP for an SEV-SNP guest (whatever its state); for approve, the error that
   *   failed the resume.
   */
  attest(request: AttestRequest): Promise<AttestResult> {
    const g = this.#g;
    try {
      this.#checkRelayed(request);
    } catch (error: unknown) {
      return Promise.reject(error);
    }
    // Never sent: SNP has no launch-secret state (QEMU answers "SEV: Not in correct state"), and an
    // SNP guest gets its secrets from its owner after attesting from inside (snp-facts §1.4, §4).
    if (request.action === 'inject-secret' && this.#snp) return Promise.reject(snpSecretRefusal(g.vm));
    return this.#hold.exclusive(this.#admit(request.action), async (): Promise<AttestResult> => {
      switch (request.action) {
        case 'approve':
          this.#log.info('guest owner approved the guest');
          this.#hold.decide('approved');
          await g.running.promise;
          return { vm: g.vm, action: 'approve', state: g.state };
        case 'reject':
          this.#log.info('guest owner rejected the guest');
          this.#hold.decide('rejected');
          await g.finished;
          return { vm: g.vm, action: 'reject', state: g.state };
        case 'inject-secret': {
          const { packetHeader, secret, gpa } = request;
          const injected = await this.#inject({ packetHeader, secret, ...(gpa === undefined ? {} : { gpa }) });
          return { vm: g.vm, action: 'inject-secret', state: g.state, ...injected };
        }
      }
    });
  }
}

/** The refusal of `inject-secret` for an SEV-SNP guest. */
export function snpSecretRefusal(vm: string): SupervisorError {
  return new SupervisorError(
    'SUP_ERR_SECRET_SNP',
    `VM ${vm} is an SEV-SNP guest: SNP has no host-side launch secret (no launch-secret state, no sev-inject-launch-secret); ` +
      "the owner releases secrets to the guest after checking its attestation report (the SNP launch record's referenceValues), " +
      'so only --approve or --reject apply',
    { details: { vm, action: 'inject-secret' } },
  );
}

/** The error a launch fails with when its hold ended without approval: the guest never ran. */
export function holdRefusal(vm: string, outcome: 'rejected' | 'timeout', timeoutMs: number): SupervisorError {
  if (outcome === 'rejected') {
    return new SupervisorError(
      'SUP_ERR_ATTEST_REJECTED',
      `VM ${vm} was rejected by the guest owner; QEMU was stopped and the guest never ran`,
      {
        details: { vm },
      },
    );
  }
  return new SupervisorError(
    'SUP_ERR_ATTEST_TIMEOUT',
    `VM ${vm}: nobody approved the guest within ${timeoutMs / 1000} s of holding it; it was rejected, QEMU was stopped and the guest never ran`,
    { details: { vm, timeoutMs } },
  );
}

export interface InjectedSecret {
  readonly gpa: number;
  readonly headerBytes: number;
  readonly secretBytes: number;
}

/**
 * `sev-inject-launch-secret` into a held guest. Without `gpa` the firmware's launch-secret area is
 * used (QEMU would silently use GPA 0 for an empty one).
 * @throws SUP_ERR_SECRET_NO_AREA, SUP_ERR_SECRET_REFUSED (with QEMU's desc); the QMP client's errors.
 */
export async function injectLaunchSecret(
  qmp: QmpExecutor,
  vm: string,
  firmware: FirmwareInfo | null,
  request: { readonly packetHeader: string; readonly secret: string; readonly gpa?: number },
): Promise<InjectedSecret> {
  const gpa = request.gpa ?? secretAreaBase(vm, firmware);
  try {
    await sevInjectLaunchSecret(qmp, { packetHeader: request.packetHeader, secret: request.secret, gpa });
  } catch (error: unknown) {
    if (!hasCode(error, 'SUP_ERR_QMP_EXECUTE')) throw error;
    const desc = typeof error.details['desc'] === 'string' ? error.details['desc'] : error.message;
    throw new SupervisorError('SUP_ERR_SECRET_REFUSED', `VM ${vm}: the platform refused the launch secret: ${desc}`, {
      details: { vm, gpa, desc },
    });
  }
  return { gpa, headerBytes: Buffer.byteLength(request.packetHeader, 'base64'), secretBytes: Buffer.byteLength(request.secret, 'base64') };
}

function secretAreaBase(vm: string, fw: FirmwareInfo | null): number {
  const area = fw?.table.secretArea ?? null;
  const problem = describeSecretAreaProblem(area);
  if (area === null || problem !== '') {
    throw new SupervisorError(
      'SUP_ERR_SECRET_NO_AREA',
      `VM ${vm}: no gpa given and the firmware ${fw?.path ?? '(none)'} has no usable launch-secret area (${problem || 'no firmware'}); ` +
        'give the guest physical address with --gpa, or use a firmware that declares one (an OVMF AmdSev build)',
      { details: { vm, firmware: fw?.path ?? null } },
    );
  }
  return area.base;
}
