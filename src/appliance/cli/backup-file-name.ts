/** The file name a backup gets when only its folder is given (`airgap backup --out DIR`, the console's download). */

/** airgap-backup-20261202T081500Z.tar for `at`. */
export function backupFileName(at: Date): string {
  return `airgap-backup-${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.tar`;
}
