/** The few parts of dcmjs (no type declarations of its own) that web/src/viewer/persist/sr.ts uses. */
declare module 'dcmjs' {
  interface DicomDict {
    write(options?: Record<string, unknown>): ArrayBuffer
  }
  const dcmjs: {
    data: {
      datasetToDict(dataset: Record<string, unknown>): DicomDict
      DicomMetaDictionary: {
        naturalizeDataset(json: Record<string, unknown>): Record<string, unknown>
      }
    }
  }
  export default dcmjs
}
