import type { ReactNode } from "react";
import { useRef } from "react";

/**
 * A button that asks first. The native modal <dialog> keeps focus inside itself, makes the page
 * behind it inert and closes on Escape, which is exactly the behaviour a confirmation needs.
 */
export function ConfirmButton({
  label,
  title,
  children,
  confirmLabel,
  onConfirm,
  disabled,
  className,
}: {
  label: string;
  title: string;
  children: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  disabled?: boolean;
  className?: string;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  return (
    <>
      <button
        type="button"
        className={className ?? "button button-danger button-small"}
        disabled={disabled}
        onClick={() => dialog.current?.showModal()}
      >
        {label}
      </button>
      <dialog ref={dialog} className="dialog" aria-label={title}>
        <form
          method="dialog"
          onSubmit={(event) => {
            const submitter = (event.nativeEvent as SubmitEvent).submitter;
            if (submitter instanceof HTMLButtonElement && submitter.value === "confirm") onConfirm();
          }}
        >
          <h2 className="dialog-title">{title}</h2>
          <div className="dialog-body">{children}</div>
          <div className="dialog-actions">
            <button type="submit" value="cancel" className="button">
              Cancel
            </button>
            <button type="submit" value="confirm" className="button button-danger">
              {confirmLabel}
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}
