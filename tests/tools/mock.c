/* placeholder while the real file is written */
int main(void) { return 1; }
