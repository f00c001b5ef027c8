/**
 * Manual upload (REQ: REG-16): what the user gave — files, folders (drag and drop or a directory picker) and zip
 * archives — as one flat list of items, each read only when needed. A zip is unpacked in the browser with zip.js
 * (loaded on first use): its central directory is read from the file, and each entry is inflated when it is sniffed
 * or sent, so an archive of a whole CD never sits in memory at once.
 */

export interface SourceItem {
  /** The path shown to the user: a folder's relative path, or "archive.zip › dir/file". */
  name: string
  size: number
  read(): Promise<Uint8Array>
  readHead(n: number): Promise<Uint8Array>
}

/** Something given that yields no item (an unreadable archive, an encrypted entry): one line in the results. */
export interface SourceProblem {
  name: string
  reason: string
}

export interface NamedFile {
  file: Blob
  path: string
}

const ZIP_NAME = /\.zip$/i
const SKIPPED_ENTRY = /(^|\/)(__MACOSX\/|\.DS_Store$|Thumbs\.db$)/i

/** A file as an item. */
export function fileItem(file: Blob, path: string): SourceItem {
  return {
    name: path,
    size: file.size,
    read: async () => new Uint8Array(await file.arrayBuffer()),
    readHead: async (n) => new Uint8Array(await file.slice(0, n).arrayBuffer()),
  }
}

/** The files of an <input type="file"> (with `webkitdirectory`, their paths inside the folder). */
export function namedFiles(list: FileList | File[]): NamedFile[] {
  return Array.from(list).map((f) => ({ file: f, path: f.webkitRelativePath || f.name }))
}

// --- drag and drop: files and whole folders (File and Directory Entries API) ------------------------------------
interface FsEntry {
  isFile: boolean
  isDirectory: boolean
  name: string
  fullPath: string
}
interface FsFileEntry extends FsEntry {
  file(ok: (f: File) => void, fail: (e: unknown) => void): void
}
interface FsDirEntry extends FsEntry {
  createReader(): { readEntries(ok: (e: FsEntry[]) => void, fail: (e: unknown) => void): void }
}

async function walk(entry: FsEntry, out: NamedFile[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((ok, fail) => (entry as FsFileEntry).file(ok, fail))
    out.push({ file, path: entry.fullPath.replace(/^\//, '') || file.name })
    return
  }
  if (!entry.isDirectory) return
  const reader = (entry as FsDirEntry).createReader()
  // readEntries answers in chunks (100 in Chromium) until an empty one
  for (;;) {
    const chunk = await new Promise<FsEntry[]>((ok, fail) => reader.readEntries(ok, fail))
    if (!chunk.length) break
    for (const child of chunk) await walk(child, out)
  }
}

/**
 * The files of a drop, folders walked. Must be called in the drop handler itself: the entries are taken before
 * the first await (a DataTransfer is emptied when its event ends).
 */
export function droppedFiles(dt: DataTransfer): Promise<NamedFile[]> {
  const entries: FsEntry[] = []
  const plain: File[] = []
  const items = dt.items ? Array.from(dt.items) : []
  for (const item of items) {
    if (item.kind !== 'file') continue
    const entry = (item as DataTransferItem & { webkitGetAsEntry?: () => FsEntry | null }).webkitGetAsEntry?.()
    if (entry) entries.push(entry)
    else {
      const f = item.getAsFile()
      if (f) plain.push(f)
    }
  }
  if (!items.length && dt.files) plain.push(...Array.from(dt.files))
  return (async () => {
    const out: NamedFile[] = plain.map((f) => ({ file: f, path: f.name }))
    for (const e of entries) await walk(e, out)
    return out
  })()
}

// --- zip archives ---------------------------------------------------------------------------------------------
type ZipModule = typeof import('@zip.js/zip.js')
let zipModule: Promise<ZipModule> | null = null

function loadZip(): Promise<ZipModule> {
  if (!zipModule) {
    zipModule = import('@zip.js/zip.js').then((m) => {
      // The CSP allows no worker from a blob: URL; inflating runs in the page (native DecompressionStream).
      m.configure({ useWebWorkers: false })
      return m
    })
  }
  return zipModule
}

/** Whether a given file is a zip archive: by its name, or by its signature. */
export async function looksLikeZip(f: NamedFile): Promise<boolean> {
  if (ZIP_NAME.test(f.path)) return true
  const head = new Uint8Array(await f.file.slice(0, 4).arrayBuffer())
  return head.length === 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 3 && head[3] === 4
}

/** The entries of a zip archive as items (directories, macOS/Windows litter skipped). */
export async function zipItems(f: NamedFile): Promise<{ items: SourceItem[]; problems: SourceProblem[] }> {
  const zip = await loadZip()
  const items: SourceItem[] = []
  const problems: SourceProblem[] = []
  let entries: Awaited<ReturnType<InstanceType<ZipModule['ZipReader']>['getEntries']>>
  try {
    const reader = new zip.ZipReader(new zip.BlobReader(f.file))
    entries = await reader.getEntries()
  } catch {
    return { items, problems: [{ name: f.path, reason: 'zip_unreadable' }] }
  }
  for (const entry of entries) {
    if (entry.directory || SKIPPED_ENTRY.test(entry.filename)) continue
    const name = `${f.path} › ${entry.filename}`
    if (entry.encrypted) {
      problems.push({ name, reason: 'zip_encrypted' })
      continue
    }
    const read = async (): Promise<Uint8Array> => {
      if (entry.directory) return new Uint8Array()
      return entry.getData(new zip.Uint8ArrayWriter())
    }
    items.push({
      name,
      size: entry.uncompressedSize,
      read,
      readHead: async (n) => (await read()).subarray(0, n),
    })
  }
  return { items, problems }
}

/** Everything given as items: zip archives unpacked, other files as they are. */
export async function expand(files: NamedFile[]): Promise<{ items: SourceItem[]; problems: SourceProblem[] }> {
  const items: SourceItem[] = []
  const problems: SourceProblem[] = []
  for (const f of files) {
    if (await looksLikeZip(f)) {
      const z = await zipItems(f)
      items.push(...z.items)
      problems.push(...z.problems)
    } else {
      items.push(fileItem(f.file, f.path))
    }
  }
  return { items, problems }
}
