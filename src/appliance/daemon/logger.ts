/** The daemon's logger: pino JSON lines, or pino-pretty when the output is a terminal. */
import { pino, type Logger } from 'pino';

/**
 * A logger writing to `stream` at `level`; pretty, synchronous lines when `tty` is true
 * (pino-pretty is loaded only then: a service writing to the journal never pays for it).
 */
export async function createLogger(level: string, stream: NodeJS.WritableStream, tty: boolean): Promise<Logger> {
  const options = { level, base: { service: 'airgap' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (!tty) return pino(options, stream as unknown as pino.DestinationStream);
  const { default: pretty } = await import('pino-pretty');
  return pino(options, pretty({ colorize: true, sync: true, destination: stream as NodeJS.WritableStream & { fd?: number }, ignore: 'hostname,service' }) as unknown as NodeJS.WritableStream);
}
