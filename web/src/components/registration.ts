/** Profile part of the self-registration form (shared by register and resubmit). */
export interface RegistrationProfile {
  full_name: string
  institution_id: number | null
  department_id: number | null
  title: string
  phone: string
  id_number: string
  id_card_photo: File | null
  qualification_photo: File | null
}

export function emptyProfile(): RegistrationProfile {
  return {
    full_name: '',
    institution_id: null,
    department_id: null,
    title: '',
    phone: '',
    id_number: '',
    id_card_photo: null,
    qualification_photo: null,
  }
}
