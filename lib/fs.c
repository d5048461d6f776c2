/* placeholder: being written */
typedef int evexec_placeholder_t;
