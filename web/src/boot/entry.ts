/** The boot chunk's entry (web/vite.config.ts bootEntry): the viewer's early preview, nothing else. */
import { startPreview } from './preview'

startPreview()
