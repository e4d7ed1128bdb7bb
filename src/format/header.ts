/**
 * The sh header of a .bin: a KEY="value" data block and a POSIX sh runtime, padded to
 * HEADER_SIZE bytes (in the spirit of makeself). The appliance parses the block as data
 * and never runs the file; `sh FILE.bin --check` and friends work with nothing but sh,
 * coreutils and tar.
 */
import { FORMAT_VERSION, FORMAT_WITH_RUNTIME, HEADER_BEGIN, HEADER_END, HEADER_SIZE, PAYLOAD_MARKER } from './layout.js';
import { BUNDLE_NAME, SEMVER } from './names.js';
import { PayloadError } from '../kit/errors.js';

/** The data block of the header. Offsets and sizes are bytes; offsets count from the start of the file. */
export interface HeaderFields {
  format: string;
  name: string;
  version: string;
  /** ISO 8601 UTC, e.g. 2026-11-22T10:00:00Z. */
  created: string;
  payloadOffset: number;
  payloadSize: number;
  /** Lower-case hex sha256 of the whole tar payload. */
  payloadSha256: string;
  /** Offset of the TOC's data (not its tar header). */
  tocOffset: number;
  tocSize: number;
  tocSha256: string;
  /** Empty when unsigned. */
  keyId: string;
  /** base64 ed25519 signature of the TOC bytes; empty when unsigned. */
  signature: string;
  /** Format 2 only: where the data of runtime/node.gz and runtime/airgap.mjs.gz are (RUNTIME_NODE, RUNTIME_CLI). */
  runtime?: { node: Span; cli: Span };
}

/** A range of the file: offset from its start and size, bytes. */
export interface Span {
  offset: number;
  size: number;
}

const CREATED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;
const NUMBER = /^(0|[1-9]\d{0,14})$/; // below 2^53: the same number in JS and sh
const HEX64 = /^[a-f0-9]{64}$/;

/** Each header key: the field it fills, the pattern its value must match. */
const KEYS = [
  ['AIRGAP_FORMAT', 'format', /^[1-9]\d{0,3}$/],
  ['NAME', 'name', BUNDLE_NAME],
  ['VERSION', 'version', SEMVER],
  ['CREATED', 'created', CREATED],
  ['PAYLOAD_OFFSET', 'payloadOffset', NUMBER],
  ['PAYLOAD_SIZE', 'payloadSize', NUMBER],
  ['PAYLOAD_SHA256', 'payloadSha256', HEX64],
  ['TOC_OFFSET', 'tocOffset', NUMBER],
  ['TOC_SIZE', 'tocSize', NUMBER],
  ['TOC_SHA256', 'tocSha256', HEX64],
  ['KEY_ID', 'keyId', /^(?:[a-f0-9]{16})?$/],
  ['SIGNATURE', 'signature', /^(?:[A-Za-z0-9+/]{86}==)?$/],
] as const satisfies ReadonlyArray<readonly [string, keyof HeaderFields, RegExp]>;

const NUMERIC = new Set<keyof HeaderFields>(['payloadOffset', 'payloadSize', 'tocOffset', 'tocSize']);

/** Format 2's keys after KEYS: "OFFSET SIZE" of each runtime entry's data. */
const RUNTIME_KEYS = [
  ['RUNTIME_NODE', 'node'],
  ['RUNTIME_CLI', 'cli'],
] as const;
const SPAN = /^(0|[1-9]\d{0,14}) (0|[1-9]\d{0,14})$/;

/**
 * Renders the header: exactly HEADER_SIZE bytes, the runtime, the marker line, then
 * newline padding. Throws when a field does not match its pattern (nothing unsafe ever
 * reaches the sh assignments) or the header would not fit.
 */
export function renderHeader(fields: HeaderFields): Buffer {
  const lines: string[] = [];
  for (const [key, field, pattern] of KEYS) {
    const value = String(fields[field]);
    if (!pattern.test(value)) throw new PayloadError('AG_HEADER', `header field ${key} has an invalid value '${value}'`);
    lines.push(`${key}="${value}"`);
  }
  const withRuntime = fields.format === FORMAT_WITH_RUNTIME;
  if (withRuntime !== (fields.runtime !== undefined) || (fields.format !== FORMAT_VERSION && !withRuntime)) {
    throw new PayloadError('AG_HEADER', `format ${fields.format} ${withRuntime ? 'needs' : 'has no'} runtime fields`);
  }
  for (const [key, part] of withRuntime ? RUNTIME_KEYS : []) {
    const value = `${fields.runtime![part].offset} ${fields.runtime![part].size}`;
    if (!SPAN.test(value)) throw new PayloadError('AG_HEADER', `header field ${key} has an invalid value '${value}'`);
    lines.push(`${key}="${value}"`);
  }
  const text = [
    '#!/bin/sh',
    '# shellcheck disable=SC2034,SC2317 # the data block is read by the appliance; the marker follows exit',
    '# airgap self-extracting payload: run `sh THIS_FILE --help`.',
    '# The block below is data; the appliance parses it and never runs this file.',
    HEADER_BEGIN,
    ...lines,
    HEADER_END,
    withRuntime ? RUNTIME_2 : RUNTIME,
    PAYLOAD_MARKER,
    '',
  ].join('\n');
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > HEADER_SIZE) throw new PayloadError('AG_HEADER', `header is ${bytes.length} bytes, more than ${HEADER_SIZE}`);
  const out = Buffer.alloc(HEADER_SIZE, 0x0a);
  bytes.copy(out);
  return out;
}

/**
 * Parses the header as data, never running it. `head` is the start of the file (at least
 * HEADER_SIZE bytes when the file has them). Throws PayloadError AG_NOT_AIRGAP when this is
 * not an airgap .bin, AG_HEADER when a field is missing, repeated or malformed.
 */
export function parseHeader(head: Buffer): HeaderFields {
  if (!head.subarray(0, 10).equals(Buffer.from('#!/bin/sh\n'))) {
    throw new PayloadError('AG_NOT_AIRGAP', 'not an airgap .bin (no sh header)');
  }
  const text = head.toString('latin1');
  const begin = text.indexOf(`\n${HEADER_BEGIN}\n`);
  const end = text.indexOf(`\n${HEADER_END}\n`);
  if (begin === -1 || end === -1 || end < begin) {
    throw new PayloadError('AG_NOT_AIRGAP', 'not an airgap .bin (no header data block)');
  }
  const block = text.slice(begin + HEADER_BEGIN.length + 2, end);
  const values = new Map<string, string>();
  for (const line of block.split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)="([^"\\$`\n]*)"$/.exec(line);
    if (!m) throw new PayloadError('AG_HEADER', `malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
    if (values.has(m[1]!)) throw new PayloadError('AG_HEADER', `header key ${m[1]} appears twice`);
    values.set(m[1]!, m[2]!);
  }
  const format = values.get('AIRGAP_FORMAT');
  if (format !== FORMAT_VERSION && format !== FORMAT_WITH_RUNTIME) {
    throw new PayloadError('AG_FORMAT', `unsupported .bin format ${JSON.stringify(format ?? '(none)')}; this airgap reads formats ${FORMAT_VERSION} and ${FORMAT_WITH_RUNTIME}`, {
      hint: 'use the airgap release that built the file, or rebuild it with this one',
    });
  }
  const fields: Record<string, string | number> = {};
  for (const [key, field, pattern] of KEYS) {
    const value = values.get(key);
    if (value === undefined) throw new PayloadError('AG_HEADER', `header key ${key} is missing`);
    if (!pattern.test(value)) throw new PayloadError('AG_HEADER', `header key ${key} has an invalid value`);
    fields[field] = NUMERIC.has(field) ? Number(value) : value;
  }
  const parsed = fields as unknown as HeaderFields;
  if (format === FORMAT_WITH_RUNTIME) {
    const spans: Partial<Record<'node' | 'cli', Span>> = {};
    for (const [key, part] of RUNTIME_KEYS) {
      const m = SPAN.exec(values.get(key) ?? '');
      if (!m) throw new PayloadError('AG_HEADER', values.has(key) ? `header key ${key} has an invalid value` : `header key ${key} is missing`);
      spans[part] = { offset: Number(m[1]), size: Number(m[2]) };
    }
    parsed.runtime = spans as { node: Span; cli: Span };
  }
  if ((parsed.keyId === '') !== (parsed.signature === '')) {
    throw new PayloadError('AG_HEADER', 'header has a KEY_ID without a SIGNATURE or the reverse');
  }
  // The header is not signed, and sh runs it: accept only the exact bytes this format
  // renders from these fields, so that no command can hide in the runtime or the padding.
  if (parsed.payloadOffset !== HEADER_SIZE || head.length < HEADER_SIZE || !head.subarray(0, HEADER_SIZE).equals(renderHeader(parsed))) {
    throw new PayloadError('AG_HEADER', 'the sh header is not the one this format writes (it was edited or made by another tool)', {
      hint: 'do not run this file; rebuild it with airgap build',
    });
  }
  return parsed;
}

/**
 * The runtime: POSIX sh with coreutils (tail, head, wc, sha256sum, numfmt) and tar.
 * Exit codes: 0 ok, 1 verification failed, 2 bad usage, 3 no appliance here, 4 extraction failed.
 */
const RUNTIME = String.raw`
self=$0
quiet=0
noexec=0
action=import
target=""

say() { [ "$quiet" -eq 1 ] || printf '%s\n' "$*"; }
err() { printf '%s: %s\n' "$self" "$*" >&2; }
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || printf '%s bytes' "$1"; }
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum | cut -d' ' -f1
  else shasum -a 256 | cut -d' ' -f1; fi
}
payload() { tail -c +"$((PAYLOAD_OFFSET + 1))" -- "$self" | head -c "$PAYLOAD_SIZE"; }

usage() {
  cat <<EOF
$NAME $VERSION: airgap self-extracting payload, $(human "$PAYLOAD_SIZE")

Usage: sh $self [OPTION]...

With no option, on an airgap appliance: verify this file, then import it
(as 'airgap import $self' does). Elsewhere it says so and exits 3.

  --help          show this help
  --info          print name, version, creation time, sizes and signing key id
  --list          list the entries of the payload (tar -tv)
  --check         verify the size and sha256 of the payload and of its TOC
  --target DIR    verify, then extract the payload into DIR (made if needed);
                  nothing is imported
  --noexec        do not import: verify only (with --target: extract only)
  --quiet         print errors only

Exit codes: 0 ok, 1 verification failed, 2 bad usage, 3 no appliance here,
4 extraction failed.
EOF
}

info() {
  printf 'Name:       %s\n' "$NAME"
  printf 'Version:    %s\n' "$VERSION"
  printf 'Created:    %s\n' "$CREATED"
  printf 'Format:     %s\n' "$AIRGAP_FORMAT"
  printf 'Payload:    %s bytes (%s) at offset %s, sha256 %s\n' "$PAYLOAD_SIZE" "$(human "$PAYLOAD_SIZE")" "$PAYLOAD_OFFSET" "$PAYLOAD_SHA256"
  printf 'TOC:        airgap.yaml, %s bytes, sha256 %s\n' "$TOC_SIZE" "$TOC_SHA256"
  if [ -n "$KEY_ID" ]; then printf 'Signed by:  key %s (ed25519)\n' "$KEY_ID"
  else printf 'Signed by:  nobody (unsigned)\n'; fi
}

check() {
  if [ ! -r "$self" ]; then err "cannot read $self"; return 1; fi
  size=$(wc -c < "$self") || { err "cannot read $self"; return 1; }
  size=$((size + 0))
  expected=$((PAYLOAD_OFFSET + PAYLOAD_SIZE))
  if [ "$size" -lt "$expected" ]; then
    err "truncated: $size bytes, $expected expected. Copy the file again."
    return 1
  fi
  if [ "$size" -gt "$expected" ]; then
    err "$((size - expected)) unexpected bytes after the payload: $size bytes, $expected expected. Copy the file again."
    return 1
  fi
  say "Verifying integrity of $self ($(human "$PAYLOAD_SIZE"))..."
  toc=$(tail -c +"$((TOC_OFFSET + 1))" -- "$self" | head -c "$TOC_SIZE" | sha256)
  if [ "$toc" != "$TOC_SHA256" ]; then
    err "TOC sha256 mismatch: got $toc, expected $TOC_SHA256. The file is damaged; copy it again."
    return 1
  fi
  sum=$(payload | sha256)
  if [ "$sum" != "$PAYLOAD_SHA256" ]; then
    err "payload sha256 mismatch: got $sum, expected $PAYLOAD_SHA256. The file is damaged; copy it again."
    return 1
  fi
  say "Integrity verified: sha256 $PAYLOAD_SHA256"
}

extract() {
  check || exit 1
  mkdir -p -- "$target" || { err "cannot create $target"; exit 4; }
  say "Extracting $NAME $VERSION into $target..."
  if ! payload | tar -xf - -C "$target"; then err "extraction into $target failed"; exit 4; fi
  say "Extracted into $target"
}

import() {
  check || exit 1
  cli=$(command -v airgap 2>/dev/null) || cli=""
  if [ -z "$cli" ]; then
    err "this machine is not an airgap appliance (no 'airgap' command on PATH)."
    err "Copy the file to the appliance and run it there; here, use --info, --list, --check or --target DIR."
    exit 3
  fi
  exec "$cli" import "$self"
}

while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) action=help ;;
    --info) action=info ;;
    --list) action=list ;;
    --check) action=check ;;
    --target)
      if [ $# -lt 2 ] || [ -z "$2" ]; then err "--target needs a directory"; exit 2; fi
      target=$2; action=target; shift ;;
    --target=*)
      target=$(printf '%s\n' "$1" | cut -d= -f2-)
      if [ -z "$target" ]; then err "--target needs a directory"; exit 2; fi
      action=target ;;
    --noexec) noexec=1 ;;
    -q|--quiet) quiet=1 ;;
    *) err "unknown option '$1' (see --help)"; exit 2 ;;
  esac
  shift
done

case $action in
  help) usage ;;
  info) info ;;
  list) payload | tar -tvf - ;;
  check) check || exit 1 ;;
  target) extract ;;
  import) if [ "$noexec" -eq 1 ]; then check || exit 1; else import; fi ;;
esac
exit 0`;

/** `text` with `from` replaced by `to`, where `from` must occur exactly once (checked when the module loads). */
function replaceOnce(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at === -1 || text.indexOf(from, at + 1) !== -1) throw new Error(`internal: the sh runtime has no single '${from.trim()}'`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/**
 * Format 2's runtime: format 1's, plus the verbs `push`, `verify` and `inspect`, which
 * check the payload's sha256 (as --check), unpack the runtime entries (gzip) into a
 * private temporary folder, and replace the shell with the CLI they hold, run on this file
 * with the other arguments (AIRGAP_RUNTIME_DIR names the folder; the CLI removes it as it
 * starts, src/portable.ts). Exit codes: the CLI's, or 4 when the
 * runtime cannot be unpacked or started here.
 */
const RUNTIME_2 = [
  ['\nself=$0\n', '\nself=$0\ncase $self in -*) self=./$self ;; esac\n'],
  [
    'Usage: sh $self [OPTION]...\n',
    'Usage: sh $self [OPTION]...\n       sh $self push --to REGISTRY[/PREFIX] [PUSH OPTION]...\n       sh $self verify --key PUB.pem [--json]\n       sh $self inspect [--key PUB.pem] [--json]\n',
  ],
  [
    '\nExit codes:',
    `
push, verify and inspect run the Node.js and airgap CLI this file carries
(signed entries of the payload, after --check) on Linux with glibc 2.28 or
newer (x86_64, or arm64 for an arm64 build) and gzip: 'sh $self push --help'
lists push's options. verify needs --key: YOUR copy of the signer's key.

Exit codes:`,
  ],
  [
    '\nwhile [ $# -gt 0 ]; do\n',
    String.raw`
# "OFFSET SIZE" of a gzip entry of this file -> its bytes, unpacked, into $2.
unpack() {
  off=${'$'}{1% *}; len=${'$'}{1#* }
  tail -c +"$((off + 1))" -- "$self" | head -c "$len" | gzip -dc > "$2"
}

cli() {
  verb=$1; shift
  printf 'Verifying the sha256 of %s (%s)...\n' "$self" "$(human "$PAYLOAD_SIZE")" >&2
  quiet=1; check || exit 1
  command -v gzip >/dev/null 2>&1 || { err "gzip is needed to unpack the runtime; install it"; exit 4; }
  tmp=${'$'}{TMPDIR:-/tmp}
  case $tmp in /*) ;; *) tmp=./$tmp ;; esac
  dir=$(mktemp -d "$tmp/airgap-runtime.XXXXXX") || { err "cannot make a folder in $tmp; set TMPDIR to a writable one"; exit 4; }
  trap 'rm -rf -- "$dir"' EXIT
  trap 'exit 130' INT TERM HUP
  if ! unpack "$RUNTIME_NODE" "$dir/node" || ! unpack "$RUNTIME_CLI" "$dir/airgap.mjs"; then
    err "cannot unpack the runtime into $dir (full disk?); set TMPDIR to another folder"; exit 4
  fi
  chmod 700 "$dir/node"
  if ! started=$("$dir/node" -e 0 2>&1); then
    err "the runtime this file carries does not start here: $started"
    err "it needs Linux with glibc 2.28 or newer (x86_64, or arm64 for an arm64 build) and a TMPDIR that allows running programs (not noexec)"
    exit 4
  fi
  # exec: signals sent to this shell reach the CLI, which removes the folder as it starts.
  AIRGAP_RUNTIME_DIR=$dir exec "$dir/node" "$dir/airgap.mjs" "$verb" "$self" "$@"
}

case ${'$'}{1-} in
  push|verify|inspect) cli "$@" ;;
esac

while [ $# -gt 0 ]; do
`,
  ],
].reduce((text, [from, to]) => replaceOnce(text, from!, to!), RUNTIME);
