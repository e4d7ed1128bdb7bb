/** The daemon's logger: pino JSON lines, or pino-pretty when the output is a terminal. */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/** A logger writing to `stream` at `level`; pretty, synchronous lines when `tty` is true. */
export function createLogger(level: string, stream: NodeJS.WritableStream, tty: boolean): Logger {
  const options = { level, base: { service: 'airgap' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (tty) return pino(options, pretty({ colorize: true, sync: true, destination: stream as NodeJS.WritableStream & { fd?: number }, ignore: 'hostname,service' }) as unknown as NodeJS.WritableStream);
  return pino(options, stream as unknown as pino.DestinationStream);
}
