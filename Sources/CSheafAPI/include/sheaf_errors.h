/* Internal to libSheaf (not part of the API): the Swift side records the last error here. */
#ifndef SHEAF_ERRORS_H
#define SHEAF_ERRORS_H
void sheaf_set_last_error(int code, const char *message);
#endif
