// Texts of the report-beside-images layout and the viewer window (REQ: RPT-12, REC-11/12; UX R23), zh-CN first,
// used as a local i18n scope (useSyncI18n) that falls back to the app's global messages.
import { useI18n } from 'vue-i18n'

const zhCN = {
  sync: {
    layoutReport: '报告',
    layoutSplit: '报告+影像',
    openWindow: '在新窗口打开影像',
    nextTask: '下一个任务',
    noNextTask: '没有下一个任务',
    popupBlocked: '浏览器阻止了弹出窗口，请允许本站打开新窗口',
    linked: '影像窗口已同步',
    linkedFrame: '影像窗口已同步（第 {frame} 帧）',
    noImages: '本检查暂无影像',
    findingImages: '正在查找影像…',
    windowTitle: '影像阅片',
    windowLinked: '已与报告窗口同步',
    windowWaiting: '等待报告窗口…',
    windowEmpty: '等待报告窗口选择检查…',
    documentTitle: '影像 · {label}',
  },
}

const enUS: typeof zhCN = {
  sync: {
    layoutReport: 'Report',
    layoutSplit: 'Report + images',
    openWindow: 'Open images in a new window',
    nextTask: 'Next task',
    noNextTask: 'No next task',
    popupBlocked: 'The browser blocked the new window; allow pop-ups for this site',
    linked: 'Image window in sync',
    linkedFrame: 'Image window in sync (frame {frame})',
    noImages: 'No images for this exam',
    findingImages: 'Looking for images…',
    windowTitle: 'Images',
    windowLinked: 'In sync with the report window',
    windowWaiting: 'Waiting for the report window…',
    windowEmpty: 'Waiting for the report window to choose an exam…',
    documentTitle: 'Images · {label}',
  },
}

export const syncMessages = { 'zh-CN': zhCN, 'en-US': enUS }

export function useSyncI18n() {
  return useI18n({ useScope: 'local', inheritLocale: true, messages: syncMessages })
}
