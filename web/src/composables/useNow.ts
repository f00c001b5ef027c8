import { onBeforeUnmount, onMounted, ref, type Ref } from 'vue'

/** The current time (ms), refreshed every `everyMs` while the component is mounted: countdowns re-render with it. */
export function useNow(everyMs = 30_000): Ref<number> {
  const now = ref(Date.now())
  let timer: ReturnType<typeof setInterval> | undefined
  onMounted(() => {
    timer = setInterval(() => {
      now.value = Date.now()
    }, everyMs)
  })
  onBeforeUnmount(() => clearInterval(timer))
  return now
}
