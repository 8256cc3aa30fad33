// The per-thread last error of the C API: set by the Swift implementation (SheafC), read through
// sheaf_last_error / sheaf_last_error_message.
#include "sheaf.h"
#include "sheaf_errors.h"

#include <string.h>

static _Thread_local int sheaf_error_code = SHEAF_OK;
static _Thread_local char sheaf_error_message[1024] = "";

void sheaf_set_last_error(int code, const char *message) {
    sheaf_error_code = code;
    if (!message) message = "";
    strncpy(sheaf_error_message, message, sizeof sheaf_error_message - 1);
    sheaf_error_message[sizeof sheaf_error_message - 1] = 0;
}

int sheaf_last_error(void) { return sheaf_error_code; }

const char *sheaf_last_error_message(void) { return sheaf_error_message; }
