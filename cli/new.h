/* `faustc new`: the project generator (cli/new.c). */
#ifndef FAUSTC_NEW_H
#define FAUSTC_NEW_H

/*
 * Runs `faustc new NAME [DIR]`; argv[0] is "new". Prints what it wrote, or why not, and
 * returns the exit status: 0, 1 (a file or directory could not be written), 2 (usage).
 */
int faustc_new(int argc, char **argv);

#endif
