// The VM lifecycle state machine: a closed set of states and the moves allowed between them.
// Owns: which transitions are legal. Pure: no I/O, no timers, no knowledge of QMP or processes.
// lifecycle.ts drives it; the API reports it. Terminal states (`stopped`, `failed`) may only start
// a new launch (`starting`), which the daemon uses when it restarts a guest.
import { SupervisorError } from '../errors.js';

export const VM_STATES = [
  'defined', // config known, no QEMU
  'starting', // preflight, run dir, spawn, QMP connect
  'attaching', // re-attaching to a QEMU that is already running (daemon restart)
  'measuring', // paused (-S): SEV checks, launch measurement, record
  'held', // paused, measured, waiting for the guest owner (approve / inject-secret / reject)
  'resuming', // `cont` sent, waiting for QEMU to report running
  'running',
  'paused', // stopped by an event (STOP) after it had run
  'stopping',
  'stopped',
  'failed',
] as const;

export type VmState = (typeof VM_STATES)[number];

const ALLOWED: { readonly [S in VmState]: readonly VmState[] } = {
  defined: ['starting', 'attaching', 'stopped', 'failed'],
  starting: ['measuring', 'resuming', 'stopping', 'failed'],
  attaching: ['held', 'running', 'paused', 'stopping', 'failed'],
  measuring: ['held', 'resuming', 'stopping', 'failed'],
  held: ['resuming', 'stopping', 'failed'],
  resuming: ['running', 'stopping', 'failed'],
  running: ['paused', 'stopping', 'stopped', 'failed'],
  paused: ['running', 'stopping', 'stopped', 'failed'],
  stopping: ['stopped', 'failed'],
  stopped: ['starting'],
  failed: ['starting'],
};

export function isTerminal(state: VmState): boolean {
  return state === 'stopped' || state === 'failed';
}

export function canTransition(from: VmState, to: VmState): boolean {
  return ALLOWED[from].includes(to);
}

/**
 * The next state, or a refusal.
 * @throws SUP_ERR_VM_STATE when `from → to` is not an allowed move.
 */
export function transition(from: VmState, to: VmState, vm?: string): VmState {
  if (canTransition(from, to)) return to;
  const who = vm === undefined ? 'VM' : `VM ${vm}`;
  throw new SupervisorError(
    'SUP_ERR_VM_STATE',
    `${who}: cannot go from ${from} to ${to} (allowed from ${from}: ${formatList(ALLOWED[from])})`,
    {
      details: { from, to },
    },
  );
}

export function isVmState(value: unknown): value is VmState {
  return typeof value === 'string' && (VM_STATES as readonly string[]).includes(value);
}

function formatList(states: readonly VmState[]): string {
  return states.length === 0 ? 'none' : states.join(', ');
}
