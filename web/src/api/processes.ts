import { http } from './http'
import type { ProcessDeployment, ProcessDeploymentDetail, ProcessValidation } from './types'

export async function listProcesses(): Promise<ProcessDeployment[]> {
  const { data } = await http.get<ProcessDeployment[]>('/processes')
  return data
}

export async function getProcess(deploymentId: number): Promise<ProcessDeploymentDetail> {
  const { data } = await http.get<ProcessDeploymentDetail>(`/processes/${deploymentId}`)
  return data
}

export async function validateProcess(processId: string, bpmnXml: string): Promise<ProcessValidation> {
  const { data } = await http.post<ProcessValidation>(
    '/processes/validate',
    { process_id: processId, bpmn_xml: bpmnXml },
    { silent: true },
  )
  return data
}

/** 400 `deploy_invalid` (details.errors) and 403 (2FA re-check, permission) are shown in the editor.
 * 201 is a new version; 200 means the diagram was unchanged and `deployment` is the existing version. */
export async function deployProcess(
  processId: string,
  bpmnXml: string,
): Promise<{ deployment: ProcessDeployment; created: boolean }> {
  const { data, status } = await http.post<ProcessDeployment>(
    '/processes/deploy',
    // A stale 2FA answers 403; keep the editor (and the unsaved diagram) instead of jumping to the MFA page.
    { process_id: processId, bpmn_xml: bpmnXml },
    { silent: true, skipStepRedirect: true },
  )
  return { deployment: data, created: status === 201 }
}

export async function migrateCases(deploymentId: number, caseIds: number[]): Promise<{ migrated: number }> {
  const { data } = await http.post<{ migrated: number }>(
    `/processes/${deploymentId}/migrate`,
    { case_ids: caseIds },
    { silent: true, skipStepRedirect: true },
  )
  return data
}
